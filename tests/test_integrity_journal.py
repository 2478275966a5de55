"""The box key and the signed journal: checked with openssl, and against every kind of tampering."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest

from gateway.integrity.journal import GENESIS, Head, SignedJournal
from gateway.integrity.keys import KeyRing, SigningKeyError
from gateway.integrity.verification import verify


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    return ring


def journal(ring: KeyRing, folder: Path, retention: float | None = None) -> SignedJournal:
    return SignedJournal(folder, "audit", ring.signer, retention=retention)


def lines(j: SignedJournal) -> list[str]:
    (path,) = j.files()
    return path.read_text().splitlines()


def rewrite(j: SignedJournal, new: list[str]) -> None:
    (path,) = j.files()
    path.write_text("".join(line + "\n" for line in new))


def test_the_key_is_created_private_and_its_fingerprint_is_what_openssl_computes(
    tmp_path: Path,
) -> None:
    ring = KeyRing(tmp_path / "keys")
    signer, created = ring.ensure()
    assert created
    assert stat.S_IMODE(ring.key_file.stat().st_mode) == 0o600
    again, created = ring.ensure()
    assert not created and again.fingerprint == signer.fingerprint
    pub = tmp_path / "pub.pem"
    pub.write_text(signer.public.pem)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", str(pub), "-outform", "der"],
        check=True,
        capture_output=True,
    ).stdout
    digest = subprocess.run(["sha256sum"], input=der, check=True, capture_output=True).stdout
    assert digest.split()[0].decode() == signer.fingerprint
    # openssl verifies what the signer signs
    data = tmp_path / "data"
    data.write_bytes(b"evidence")
    (tmp_path / "data.sig").write_bytes(signer.sign(b"evidence"))
    out = subprocess.run(
        [
            *("openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(pub), "-rawin"),
            *("-in", str(data), "-sigfile", str(tmp_path / "data.sig")),
        ],
        capture_output=True,
        text=True,
    )
    assert "Signature Verified Successfully" in out.stdout
    assert "PRIVATE" not in repr(signer) and ring.key_file.read_text() not in repr(signer)


def test_rotation_is_signed_by_the_old_key_and_the_chain_of_keys_can_be_followed(
    ring: KeyRing,
) -> None:
    first = ring.signer()
    old, new = ring.rotate()
    assert old.fingerprint == first.fingerprint != new.fingerprint
    assert ring.signer().fingerprint == new.fingerprint
    keys = ring.public_keys()
    assert set(keys) == {old.fingerprint, new.fingerprint}
    # a forged rotation (not signed by the previous key) is not followed
    history = ring.history_file.read_text().splitlines()
    forged = json.loads(history[-1])
    forged["handover_sig"] = forged["handover_sig"][:-4] + "AAA="
    ring.history_file.write_text("\n".join([history[0], json.dumps(forged)]) + "\n")
    assert set(ring.public_keys()) == {old.fingerprint}


def test_an_unreadable_key_is_a_clear_error_and_is_never_replaced(ring: KeyRing) -> None:
    ring.key_file.write_text("not a key")
    with pytest.raises(SigningKeyError, match="not a readable PEM key"):
        ring.signer()
    with pytest.raises(SigningKeyError):
        ring.ensure()
    assert ring.key_file.read_text() == "not a key"
    ring.key_file.unlink()
    with pytest.raises(SigningKeyError, match="missing"):
        ring.signer()


def test_an_untouched_journal_verifies(ring: KeyRing, tmp_path: Path) -> None:
    j = journal(ring, tmp_path / "audit")
    for n in range(5):
        j.append("export", n=n, reason="plainte n°12 — «hall»")
    result = verify(j, ring.public_keys(), head=j.head())
    assert result.ok, result.problems
    assert result.entries == 5 and result.head == j.head()
    first = json.loads(lines(j)[0])
    assert first["seq"] == 1 and first["prev"] == GENESIS


def test_a_journal_written_by_two_writers_stays_one_chain(ring: KeyRing, tmp_path: Path) -> None:
    a = journal(ring, tmp_path / "audit")
    b = journal(ring, tmp_path / "audit")
    a.append("one")
    b.append("two")
    a.append("three")
    assert [json.loads(x)["seq"] for x in lines(a)] == [1, 2, 3]
    assert verify(a, ring.public_keys()).ok


@pytest.mark.parametrize("mutation", ["edit", "remove", "insert", "swap", "flip", "garbage"])
def test_every_mutation_of_a_journal_is_detected(
    ring: KeyRing, tmp_path: Path, mutation: str
) -> None:
    j = journal(ring, tmp_path / "audit")
    for n in range(4):
        j.append("hold_placed", case=f"PV-{n}")
    head = j.head()
    old = lines(j)
    new = list(old)
    if mutation == "edit":
        entry = json.loads(new[1])
        entry["case"] = "PV-X"
        new[1] = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    elif mutation == "remove":
        del new[2]
    elif mutation == "insert":
        new.insert(2, new[1])
    elif mutation == "swap":
        new[1], new[2] = new[2], new[1]
    elif mutation == "flip":
        new[0] = new[0].replace("PV-0", "PV-9")
    else:
        new[3] = new[3][:20]
    rewrite(j, new)
    result = verify(j, ring.public_keys(), head=head)
    assert not result.ok
    assert all(p.what for p in result.problems)


def test_a_cut_tail_is_detected_against_the_published_head(ring: KeyRing, tmp_path: Path) -> None:
    j = journal(ring, tmp_path / "audit")
    for n in range(4):
        j.append("export", n=n)
    head = j.head()
    rewrite(j, lines(j)[:2])
    assert verify(j, ring.public_keys()).ok  # on its own, a shorter chain is consistent
    result = verify(j, ring.public_keys(), head=head)
    assert not result.ok
    assert "entries removed from the end" in str(result.problems[0])
    # a rewritten tail of the same length is caught by the hash
    fake = Head(head.seq, "f" * 64)
    rewrite(j, lines(j))
    for n in range(2):
        j.append("export", n=n)
    assert not verify(j, ring.public_keys(), head=fake).ok


def test_without_a_key_entries_are_still_chained_but_reported_unsigned(
    ring: KeyRing, tmp_path: Path
) -> None:
    j = journal(ring, tmp_path / "audit")
    j.append("daemon_started")
    os.rename(ring.key_file, tmp_path / "elsewhere.pem")
    entry = j.append("forward_started")
    assert entry["sig"] is None and j.unsigned == 1 and "missing" in (j.last_key_error or "")
    result = verify(j, ring.public_keys())
    assert result.unsigned == 1 and not result.ok


def test_a_torn_last_line_is_cut_before_the_next_entry(ring: KeyRing, tmp_path: Path) -> None:
    j = journal(ring, tmp_path / "audit")
    j.append("one")
    (path,) = j.files()
    with path.open("a") as f:
        f.write('{"seq":2,"ti')
    j.append("two")
    assert verify(j, ring.public_keys()).ok
    assert [json.loads(x)["event"] for x in lines(j)] == ["one", "two"]


def test_retention_removes_old_months_and_the_chain_still_verifies(
    ring: KeyRing, tmp_path: Path
) -> None:
    j = journal(ring, tmp_path / "audit", retention=3600)
    j.append("old")
    (current,) = j.files()
    old = current.with_name("audit-2000-01.jsonl")
    current.rename(old)
    entry = json.loads(old.read_text())
    assert entry["seq"] == 1
    j.append("new")
    assert len(j.files()) == 2
    removed = j.expire(now=time.time())
    assert removed == []  # its newest entry is recent (written now)
    # age the old file's only entry
    j2 = journal(ring, tmp_path / "audit2", retention=3600)
    j2.append("old")
    (cur2,) = j2.files()
    aged = cur2.with_name("audit-2000-01.jsonl")
    cur2.rename(aged)
    j2.append("new")
    removed = j2.expire(now=time.time() + 7200)
    assert removed == [aged]
    result = verify(j2, ring.public_keys())
    assert result.ok, result.problems
    assert result.first_seq == 2
