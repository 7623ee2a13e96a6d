"""The $CONDUCTOR_OUTPUT format, as GitHub's runner reads $GITHUB_OUTPUT."""

from __future__ import annotations

from pathlib import Path

import pytest

from conductor.run.outfile import MAX_BYTES, OutputFileError, parse_outputs, read_output_file


def test_key_value_lines_and_heredocs() -> None:
    text = "api=users-v2\nsummary<<EOF\nfirst line\n\nthird = line <<x\nEOF\nport=8080\n"
    assert parse_outputs(text) == {
        "api": "users-v2",
        "summary": "first line\n\nthird = line <<x",  # no newline before the delimiter
        "port": "8080",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b=c\n", {"a": "b=c"}),  # the value is everything after the first `=`
        ("a=b<<c\n", {"a": "b<<c"}),  # `=` first: a plain line
        ("a<<X=\nv\nX=\n", {"a": "v"}),  # `<<` first: a heredoc whose delimiter holds `=`
        ("a=\n", {"a": ""}),
        ("a<<EOF\nEOF\n", {"a": ""}),
        ("\n\na=1\n\n", {"a": "1"}),  # empty lines between entries are ignored
        ("a=1\na=2\n", {"a": "2"}),  # the last write wins
        ("a=1\r\nb<<EOF\r\nx\r\nEOF\r\n", {"a": "1", "b": "x"}),  # CRLF line ends
        ("a=no final newline", {"a": "no final newline"}),
        ("a<<EOF\n  EOF\nEOF\n", {"a": "  EOF"}),  # only the exact delimiter ends it
        ("", {}),
    ],
)
def test_edge_cases_read_as_the_runner_reads_them(text: str, expected: dict[str, str]) -> None:
    assert parse_outputs(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a=1\njust words\n", "line 2: `just words` is neither `key=value` nor"),
        ("a=1\nb<<EOF\nx\n", "line 2: `b<<EOF`: no line `EOF` ends the value"),
        ("b<<\n", "line 1: `b<<` has no delimiter"),
        ("=v\n", "line 1: a value without a key"),
        ("a=1\nmy key=v\n", "line 2: `my key` is not a usable key"),
        ("1st=v\n", "`1st` is not a usable key"),
    ],
)
def test_malformed_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(OutputFileError, match="CONDUCTOR_OUTPUT") as err:
        parse_outputs(text)
    assert message in str(err.value)


def test_files_too_large_or_not_utf8_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"a=" + b"x" * MAX_BYTES + b"\n")
    with pytest.raises(OutputFileError, match="over 1,048,576"):
        read_output_file(big)
    binary = tmp_path / "bin"
    binary.write_bytes(b"a=1\nb=\xff\n")
    with pytest.raises(OutputFileError, match="line 2: not valid UTF-8"):
        read_output_file(binary)
    assert read_output_file(tmp_path / "missing") == {}


def test_a_symlink_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    """The file is in the agent's worktree: pointed at a file the agent may not read
    (a sandbox's denied ~/.ssh), the runner must not read it for the agent."""
    secret = tmp_path / "id_rsa"
    secret.write_text("key=PRIVATE\n")
    (tmp_path / "output").symlink_to(secret)
    with pytest.raises(OSError):
        read_output_file(tmp_path / "output")
