"""The web page over the real store of a real run (shell tasks): pages, SSE replay, the
token and host guard, and that the server only ever reads."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install '.[web]'")

from starlette.testclient import TestClient

from conductor.errors import StoreError
from conductor.state.readonly import ReadOnlyStore, open_readonly
from conductor.state.store import Store
from conductor.web.app import make_app
from tests.testing.runner import db_rows
from tests.testing.web import finished_run, slow_workflow, sse_messages, start_detached

LOCAL = "http://127.0.0.1"


@pytest.fixture
def ran(repo: Path) -> tuple[Path, str]:
    return repo, finished_run(repo)


@pytest.fixture
def client(ran: tuple[Path, str]) -> Iterator[TestClient]:
    repo, _ = ran
    store = open_readonly(repo / ".conductor" / "state.db")
    with TestClient(make_app(store, None), base_url=LOCAL) as c:
        yield c
    store.close()


def node_states(html: str) -> dict[str, str]:
    """task -> the state class of its box in the DAG."""
    return {m.group(2): m.group(1) for m in
            re.finditer(r"<g class='node st-(\w+)' data-task='([^']+)'>", html)}  # fmt: skip


def test_runs_page_lists_the_run_with_its_state_and_counts(client: TestClient,
                                                           ran: tuple[Path, str]) -> None:  # fmt: skip
    page = client.get("/")
    assert page.status_code == 200
    assert f"/runs/{ran[1]}" in page.text
    assert "st-failed" in page.text and "3 succeeded, 1 failed" in page.text


def test_run_page_draws_the_dag_by_wave_and_group_coloured_by_state(
    client: TestClient, ran: tuple[Path, str]
) -> None:
    page = client.get(f"/runs/{ran[1]}")
    assert page.status_code == 200
    assert node_states(page.text) == {"A": "succeeded", "B": "succeeded", "C": "succeeded",
                                      "D": "failed"}  # fmt: skip
    svg = page.text[page.text.index("<svg class=dag"):]
    assert "wave 1" in svg and "wave 2" in svg and ">build<" in svg and ">check<" in svg
    assert "after build" in svg  # the group edge
    edges = svg[svg.index("<g class=edges>"):]
    assert edges[:edges.index("</g>")].count("<path") == 1  # the one edge on a task: A -> C
    for state in ("awaiting approval", "skipped", "blocked", "paused", "retrying"):
        assert f"</span>{state}</li>" in page.text, state  # the legend names every state
    assert "<svg class=gantt" in page.text and "<table class='tasks'>" in page.text
    assert "1/1 passed" in page.text  # B's validator
    assert "agent exited 1" in page.text  # D's error in the table


def test_run_parts_carry_each_tasks_state_for_the_script(client: TestClient,
                                                         ran: tuple[Path, str]) -> None:  # fmt: skip
    parts = client.get(f"/runs/{ran[1]}/parts").json()
    assert parts["tasks"] == {"A": "succeeded", "B": "succeeded", "C": "succeeded",
                              "D": "failed"}  # fmt: skip
    assert parts["state"] == "failed" and parts["live"] is False
    assert "<svg class=gantt" in parts["gantt"] and "D" in parts["table"]


def test_task_page_shows_attempts_log_validators_instructions_and_diff(
    client: TestClient, ran: tuple[Path, str]
) -> None:
    page = client.get(f"/runs/{ran[1]}/tasks/B")
    assert page.status_code == 200
    assert "test -f b.txt" in page.text  # the validator, with its result
    assert "Run this shell command" in page.text  # the instructions file
    assert "+B" in page.text and "b.txt" in page.text  # its merged diff
    assert "form class=decide" not in page.text  # nothing awaits approval
    log = client.get(f"/runs/{ran[1]}/tasks/A").text
    assert "hello from A" in log
    chunk = client.get(f"/runs/{ran[1]}/tasks/A/log", params={"offset": "0"}).json()
    assert "hello from A" in chunk["text"] and chunk["done"] is True
    rest = client.get(f"/runs/{ran[1]}/tasks/A/log", params={"offset": chunk["offset"]}).json()
    assert rest["text"] == ""


def test_unknown_run_or_task_is_404_and_assets_are_served(client: TestClient,
                                                          ran: tuple[Path, str]) -> None:  # fmt: skip
    assert client.get("/runs/nope").status_code == 404
    assert client.get(f"/runs/{ran[1]}/tasks/nope").status_code == 404
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "EventSource" in js.text
    css = client.get("/static/style.css")
    assert css.status_code == 200 and ".st-awaiting_approval" in css.text
    page = client.get(f"/runs/{ran[1]}").text
    assert "http" not in re.sub(r"http://www\.w3\.org/2000/svg", "", page.split("<main>")[0])


def test_sse_replays_the_whole_run_then_ends(client: TestClient, ran: tuple[Path, str]) -> None:
    repo, run = ran
    stored = [r["id"] for r in db_rows(repo, "SELECT id FROM events WHERE run_id = ? "
                                       "ORDER BY id", run)]  # fmt: skip
    with client.stream("GET", f"/runs/{run}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        msgs = sse_messages(resp.read().decode())
    events = [m for m in msgs if m.get("event") == "conductor"]
    assert [int(m["id"]) for m in events] == stored  # a late joiner sees every event
    assert [json.loads(m["data"])["id"] for m in events] == stored
    tasks = [json.loads(m["data"]) for m in msgs if m.get("event") == "tasks"]
    assert tasks[-1]["tasks"]["D"] == "failed" and tasks[-1]["state"] == "failed"
    assert msgs[-1]["event"] == "end"


def test_sse_resumes_after_last_event_id(client: TestClient, ran: tuple[Path, str]) -> None:
    repo, run = ran
    stored = [r["id"] for r in db_rows(repo, "SELECT id FROM events WHERE run_id = ? "
                                       "ORDER BY id", run)]  # fmt: skip
    cut = stored[4]
    for kwargs in ({"headers": {"Last-Event-ID": str(cut)}}, {"params": {"after": str(cut)}}):
        with client.stream("GET", f"/runs/{run}/events", **kwargs) as resp:  # type: ignore[arg-type]
            ids = [int(m["id"]) for m in sse_messages(resp.read().decode()) if "id" in m]
        assert ids == stored[5:], kwargs


def test_a_token_is_needed_on_every_request_when_set(ran: tuple[Path, str]) -> None:
    repo, run = ran
    with ReadOnlyStore(repo / ".conductor" / "state.db") as store:
        client = TestClient(make_app(store, "s3cret-token"), base_url="http://192.0.2.1")
        for path in ("/", f"/runs/{run}", "/metrics", "/static/app.js", f"/runs/{run}/events"):
            assert client.get(path).status_code == 401, path
        assert client.get("/", params={"token": "wrong"}).status_code == 401
        assert client.get("/", headers={"X-Conductor-Token": "s3cret-token"}).status_code == 200
        assert client.get("/", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        page = client.get(f"/runs/{run}", params={"token": "s3cret-token"})
        assert page.status_code == 200
        assert f"/runs/{run}/tasks/A?token=s3cret-token" in page.text  # links keep it
        assert "/static/app.js?token=s3cret-token" in page.text


def test_without_a_token_only_loopback_hosts_are_answered(ran: tuple[Path, str]) -> None:
    repo, _ = ran
    with ReadOnlyStore(repo / ".conductor" / "state.db") as store:
        app = make_app(store, None)
        assert TestClient(app, base_url="http://localhost:8765").get("/").status_code == 200
        # a page of another site that rebinds its name to 127.0.0.1 sends its own Host
        assert TestClient(app, base_url="http://evil.example").get("/").status_code == 401


def test_the_server_never_writes_and_a_writer_proceeds_while_it_reads(
    client: TestClient, ran: tuple[Path, str]
) -> None:
    repo, run = ran
    db = repo / ".conductor" / "state.db"
    with ReadOnlyStore(db) as reader, pytest.raises(StoreError):
        reader.update_run(run, reason="x")  # SQLite itself refuses
    writer = sqlite3.connect(db, timeout=0.5, isolation_level=None)  # no patience at all
    try:
        with client.stream("GET", f"/runs/{run}/events") as resp:
            lines = resp.iter_lines()
            assert next(lines).startswith("retry:")  # the server is mid-stream, reading
            writer.execute("BEGIN IMMEDIATE")  # the write lock, at once
            writer.execute("UPDATE runs SET reason = 'written' WHERE id = ?", (run,))
            writer.execute("COMMIT")
            assert "event: end" in list(lines)
        assert client.get(f"/runs/{run}").status_code == 200
    finally:
        writer.close()
    with Store(db) as store:
        row = store.run(run)
        assert row is not None and row["reason"] == "written"


def test_an_interrupted_run_beside_a_finished_one(ran: tuple[Path, str]) -> None:
    """Several runs in one repository, one of them killed mid-task (kill -9 of its runner):
    the page shows it interrupted, its running task too, and its stream ends."""
    repo, done = ran
    run = start_detached(repo, slow_workflow(2, 2.0))
    deadline = time.monotonic() + 30
    while not db_rows(repo, "SELECT 1 FROM tasks WHERE run_id = ? AND state = 'running'", run):
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.05)
    pid = db_rows(repo, "SELECT pid FROM runs WHERE id = ?", run)[0]["pid"]
    os.kill(pid, signal.SIGKILL)  # its `sleep 2` ends by itself
    deadline = time.monotonic() + 10
    with ReadOnlyStore(repo / ".conductor" / "state.db") as store:
        client = TestClient(make_app(store, None), base_url=LOCAL)
        while "st-interrupted" not in client.get("/").text:  # the lock goes with the process
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runs = client.get("/").text
        assert f"/runs/{run}" in runs and f"/runs/{done}" in runs
        page = client.get(f"/runs/{run}").text
        assert node_states(page)["T0"] == "interrupted"
        with client.stream("GET", f"/runs/{run}/events") as resp:
            msgs = sse_messages(resp.read().decode())
        assert msgs[-1]["event"] == "end"
        assert json.loads(msgs[-2]["data"])["state"] == "interrupted"


def test_links_to_fan_out_tasks_whose_ids_hold_spaces_commas_and_slashes(repo: Path) -> None:
    from tests.testing.runner import cli, latest_run, write_workflow

    write_workflow(repo, 'version: 1\nname: fan\ntasks:\n  lint:\n'
                         '    for_each: ["a b", "x,y", "src/log"]\n'
                         '    run: "echo {{ matrix.item }}"\n')  # fmt: skip
    assert cli(repo, "run", "wf.yaml", "--quiet").returncode == 0
    run = latest_run(repo)
    with ReadOnlyStore(repo / ".conductor" / "state.db") as store:
        client = TestClient(make_app(store, None), base_url=LOCAL)
        page = client.get(f"/runs/{run}").text
        assert node_states(page) == {"lint[a b]": "succeeded", "lint[x,y]": "succeeded",
                                     "lint[src/log]": "succeeded"}  # fmt: skip
        # the id with a '/' (it had no page), its log as the page's script asks for it
        assert "echo src/log" in client.get(f"/runs/{run}/tasks/lint%5Bsrc/log%5D").text
        chunk = client.get(f"/runs/{run}/tasks/lint%5Bsrc%2Flog%5D/log", params={"offset": "0"})
        assert chunk.status_code == 200 and "src/log" in chunk.json()["text"]
        links = re.findall(r"href='(/runs/[^']*/tasks/[^']*)'", page)
        assert f"/runs/{run}/tasks/lint%5Ba%20b%5D" in links
        for link in set(links):
            task = client.get(link)
            assert task.status_code == 200, link
        assert "echo a b" in client.get(f"/runs/{run}/tasks/lint%5Ba%20b%5D").text
