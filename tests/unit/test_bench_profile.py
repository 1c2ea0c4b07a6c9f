"""The profile summary puts samples in the bucket of their innermost known frame."""

from __future__ import annotations

from pathlib import Path

from gateway.sandbox.bench.profile import bucket_of, render, summarise

SIGN = "sign (gateway/core/jws.py:64)"
VERIFY = "verify (gateway/core/jws.py:175)"
HANDLER = "handle_consumer (gateway/node/server.py:380)"
LOOP = "run_forever (asyncio/base_events.py:600)"
COMMIT = "_commit_batch (gateway/messagelog/writer.py:400)"


def test_innermost_known_frame_decides() -> None:
    assert bucket_of(["MainThread", LOOP, HANDLER, SIGN]) == "ES256 sign"
    assert bucket_of(["MainThread", LOOP, HANDLER, VERIFY]) == "ES256 verify + x5c"
    assert bucket_of(["MainThread", LOOP, HANDLER]) == "gateway node logic"
    assert bucket_of(["MainThread", LOOP]) == "asyncio / event loop"
    assert bucket_of(["writer", COMMIT]) == "SQLite commit (writer thread)"
    assert bucket_of(["MainThread", "mystery (lib.py:1)"]) == "other"


def test_summary_counts_and_shares(tmp_path: Path) -> None:
    raw = tmp_path / "provider.txt"
    raw.write_text(
        f"MainThread;{LOOP};{HANDLER};{SIGN} 30\n"
        f"MainThread;{LOOP};{HANDLER};{VERIFY} 50\n"
        f"writer;{COMMIT} 20\n"
        "garbage line without a count\n",
        "utf-8",
    )
    profile = summarise("provider", raw)
    assert profile.samples == 100
    assert profile.buckets == {
        "ES256 verify + x5c": 50,
        "ES256 sign": 30,
        "SQLite commit (writer thread)": 20,
    }
    assert profile.top_self[0] == (VERIFY, 50)
    text = render([profile])
    assert "provider: 100 samples" in text
    assert " 50.0 %  ES256 verify + x5c" in text
