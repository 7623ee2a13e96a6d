"""`conductor serve` and `conductor metrics` as a person runs them: real processes, a real
uvicorn on 127.0.0.1, a run going on meanwhile, and each refusal as one message, exit 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed: pip install '.[web]'")
import httpx

from conductor.state.store import Store
from tests.testing.runner import cli, db_rows
from tests.testing.web import serving, slow_workflow, sse_messages, start_detached


def one_message(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert words in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def empty_store(repo: Path) -> None:
    Store(repo / ".conductor" / "state.db").close()


def test_serve_and_metrics_without_a_store_exit_2(repo: Path) -> None:
    one_message(cli(repo, "serve", "--port", "0"), "no conductor runs here")
    one_message(cli(repo, "metrics"), "no conductor runs here")


def test_a_port_in_use_exits_2(repo: Path) -> None:
    empty_store(repo)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        one_message(cli(repo, "serve", "--port", str(port)), f"port {port} on 127.0.0.1 is in use")


@pytest.mark.parametrize("command", ["serve", "metrics"])
def test_without_the_web_extra_it_says_what_to_install(repo: Path, command: str) -> None:
    empty_store(repo)
    hide = ("import sys\nfor m in ('starlette', 'uvicorn', 'prometheus_client'):\n"
            "    sys.modules[m] = None\n"
            "from conductor.cli import main\nsys.argv = ['conductor', *sys.argv[1:]]\nmain()\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", hide, command], cwd=repo, text=True,
                          capture_output=True, timeout=60)  # fmt: skip
    one_message(proc, "pip install 'conductor-dag[web]'")
    assert "starlette, uvicorn, prometheus_client not installed" in proc.stderr


def test_importing_conductor_needs_no_web_extra() -> None:
    code = ("import sys\nfor m in ('starlette', 'uvicorn', 'prometheus_client'):\n"
            "    sys.modules[m] = None\n"
            "import conductor, conductor.cli, conductor.web, conductor.state.readonly\n"
            "print('ok')\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], text=True, capture_output=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_a_live_run_streams_to_a_connected_page_and_is_not_slowed(repo: Path) -> None:
    """A run started in the background proceeds while a client reads its event stream:
    every event arrives live, the stream ends when the run does, the run succeeds."""
    empty_store(repo)
    with serving(repo) as served:
        run = start_detached(repo, slow_workflow(4, 0.6))
        text, pool, header = "", [], []
        with httpx.Client(base_url=served.base, timeout=60) as client, \
                client.stream("GET", f"/runs/{run}/events") as resp:  # fmt: skip
            assert resp.status_code == 200
            for line in resp.iter_lines():
                text += line + "\n"
                if line.startswith("data:") and '"task_started"' in line and not pool:
                    pool.append(client.get("/metrics").text)  # scraped mid-run
                if line.startswith("data:") and '"task_completed"' in line and not header:
                    header.append(client.get(f"/runs/{run}/parts").json()["header"])
        msgs = sse_messages(text)
        kinds = [json.loads(m["data"])["kind"] for m in msgs if m.get("event") == "conductor"]
        assert kinds.count("task_completed") == 4 and "run_finished" in kinds
        assert msgs[-1]["event"] == "end"
        stored = db_rows(repo, "SELECT COUNT(*) AS n FROM events WHERE run_id = ?", run)[0]["n"]
        assert len(kinds) == stored
        assert db_rows(repo, "SELECT state FROM runs WHERE id = ?", run)[0]["state"] == "succeeded"
        assert "<dt>ETA</dt>" in header[0] and " left</dd>" in header[0]  # one task done
        assert 'conductor_pool_slots_used{pool="local"} 1.0' in pool[0] or \
            'conductor_pool_slots_used{pool="local"} 2.0' in pool[0]  # fmt: skip
        code, out = served.stop()
    assert code == 0 and out.rstrip().endswith("stopped"), out


def test_beyond_loopback_every_request_needs_the_token(repo: Path) -> None:
    empty_store(repo)
    with serving(repo, "--host", "0.0.0.0") as served:
        token = served.token
        assert token and len(token) >= 24, served.lines
        assert served.proc.stdout is not None
        assert served.proc.stdout.readline().startswith(f"token: {token} ")
        local = served.base.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(local, timeout=10).status_code == 401
        assert httpx.get(local + "metrics", timeout=10).status_code == 401
        assert httpx.get(local, params={"token": token}, timeout=10).status_code == 200
        ok = httpx.get(local + "metrics", headers={"X-Conductor-Token": token}, timeout=10)
        assert ok.status_code == 200


def test_the_token_may_come_from_config(repo: Path) -> None:
    empty_store(repo)
    (repo / "conductor.toml").write_text('[serve]\ntoken = "from-config-0123456789"\n')
    with serving(repo, "--host", "0.0.0.0") as served:
        assert served.token == "from-config-0123456789"
        local = served.base.replace("0.0.0.0", "127.0.0.1")
        assert httpx.get(local, timeout=10).status_code == 401
        assert httpx.get(local, params={"token": served.token}, timeout=10).status_code == 200
    shown = cli(repo, "config")
    assert "from-config" not in shown.stdout and "(set)" in shown.stdout
    as_json = cli(repo, "config", "--json")  # it printed the token itself
    assert "from-config" not in as_json.stdout
    assert json.loads(as_json.stdout)["values"]["serve.token"] == "(set)"


def live_page(proc: subprocess.Popen[str]) -> str:
    """The URL `--web` printed on stderr (read until it comes)."""
    assert proc.stderr is not None
    for _ in range(50):
        line = proc.stderr.readline()
        if line.startswith("live page: "):
            return line.split(": ", 1)[1].strip()
        assert line, "ended before printing the page's URL"
    raise AssertionError("no `live page:` line")


def test_run_web_serves_the_run_page_while_it_runs(repo: Path) -> None:
    from tests.testing.runner import conductor_argv, write_workflow

    write_workflow(repo, slow_workflow(2, 1.5), "slow.yaml")
    proc = subprocess.Popen([*conductor_argv(), "run", "slow.yaml", "--web", "--quiet"],
                            cwd=repo, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = live_page(proc)
        page = httpx.get(url, timeout=10)
        assert page.status_code == 200 and "data-view=run" in page.text
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.communicate()
    with pytest.raises(httpx.ConnectError):  # the page went with the run
        httpx.get(url, timeout=5)


def test_watch_web_serves_the_page_until_the_run_ends(repo: Path) -> None:
    from tests.testing.runner import conductor_argv

    run = start_detached(repo, slow_workflow(2, 1.5))
    proc = subprocess.Popen([*conductor_argv(), "watch", run, "--web", "--json"], cwd=repo,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        url = live_page(proc)
        assert url.endswith(f"/runs/{run}")
        assert httpx.get(url.rsplit("/runs/", 1)[0] + "/", timeout=10).status_code == 200
        assert proc.wait(60) == 0
    finally:
        proc.kill()
        proc.communicate()


def test_run_web_refuses_detach_before_anything_starts(repo: Path) -> None:
    from tests.testing.runner import write_workflow

    write_workflow(repo, slow_workflow(2, 0.1), "slow.yaml")
    one_message(cli(repo, "run", "slow.yaml", "--web", "--detach"), "--web needs the run")
    assert not (repo / ".conductor" / "state.db").exists() or not db_rows(
        repo, "SELECT id FROM runs")  # fmt: skip


def test_approve_and_reject_from_the_task_page(repo: Path) -> None:
    """A task awaiting approval gets the buttons; their POST decides as the commands do.
    A POST from a page of another site is refused."""
    empty_store(repo)
    text = ('version: 1\nname: review\ntasks:\n'
            '  A: {run: "echo a > a.txt", approve: true}\n'
            '  B: {run: "echo b > b.txt", approve: true}\n')  # fmt: skip
    with serving(repo) as served:
        run = start_detached(repo, text, "review.yaml")
        deadline = time.monotonic() + 30
        while len(db_rows(repo, "SELECT 1 FROM tasks WHERE run_id = ? AND state = "
                          "'awaiting_approval'", run)) < 2:  # fmt: skip
            assert time.monotonic() < deadline, "the tasks never waited"
            time.sleep(0.1)
        with httpx.Client(base_url=served.base, timeout=30) as client:
            page = client.get(f"/runs/{run}/tasks/A").text
            assert "form class=decide" in page and "Approve" in page
            forged = client.post(f"/runs/{run}/tasks/A/approve", json={},
                                 headers={"Origin": "http://evil.example"})  # fmt: skip
            assert forged.status_code == 403
            ok = client.post(f"/runs/{run}/tasks/A/approve", json={})
            assert ok.status_code == 200 and ok.json()["decision"] == "approve"
            again = client.post(f"/runs/{run}/tasks/A/approve", json={})
            assert again.status_code == 409 and "not awaiting approval" in again.text
            no = client.post(f"/runs/{run}/tasks/B/reject", json={"message": ""})
            assert no.status_code == 200
        while db_rows(repo, "SELECT state FROM runs WHERE id = ?", run)[0]["state"] == "running":
            assert time.monotonic() < deadline + 30, "the run never ended"
            time.sleep(0.1)
    states = {r["task_id"]: r["state"] for r in db_rows(repo, "SELECT task_id, state FROM tasks")}
    assert states == {"A": "succeeded", "B": "failed"}  # rejected without a message: fails
