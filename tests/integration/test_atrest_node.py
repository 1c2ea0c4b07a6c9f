"""A provider node with a data key: what reaches its log file is sealed, the data
tracker and ``gateway log show`` still answer with the key, and a wrong passphrase
stops the node before it serves (docs/message-log.md#at-rest)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.conf.directory import TrustParameters
from gateway.keys.datakey import create_data_key
from gateway.messagelog import LogStoreError, open_store
from gateway.messagelog.tracker import Tracker
from gateway.node.config import ConfigError, load_config
from gateway.node.server import Node
from gateway.sandbox.localnet import LocalNet, ServiceSpec
from tests.integration.conftest import (
    GEWERBEAMT,
    LIPPSTADT,
    SERVICE,
    SOEST,
    SUBJECT_IDNR,
    RecordingRegistry,
)

pytestmark = pytest.mark.integration

NAME = "Sealtestname"
CLERK = "clerk-sealtest-0042"


@pytest.fixture(scope="module")
def snet(
    tmp_path_factory: pytest.TempPathFactory, registry: RecordingRegistry
) -> Iterator[LocalNet]:
    net = LocalNet.create(tmp_path_factory.mktemp("snet"), [SOEST, LIPPSTADT], datetime.now(UTC))
    net.add_service(
        ServiceSpec(
            id=SERVICE, url=f"{registry.url}/personen", openapi_url=None, allowed=(GEWERBEAMT,)
        )
    )
    net.write_configs(
        parameters=TrustParameters(timestamping_interval_seconds=3600),
        globalconf_refresh_seconds=3600,
    )
    net.start_trust()
    try:
        yield net
    finally:
        net.stop()


def with_data_key(config: Path, passphrase: str) -> Path:
    """Lippstadt's node.toml with a data key (made once) and a passphrase file."""
    key = config.parent / "data.key"
    if not key.exists():
        create_data_key(key, b"lippstadt data key")
    (config.parent / "data-key.pass").write_text(passphrase + "\n")
    (config.parent / "data-key.pass").chmod(0o600)
    text = config.read_text()
    if "[logging]" not in text:
        text += '\n[logging]\ndata_key = "data.key"\ndata_key_passphrase_file = "data-key.pass"\n'
        config.write_text(text)
    return key


async def exchange(soest: Node) -> None:
    assert soest.endpoints is not None
    async with httpx.AsyncClient(timeout=30) as client:
        reply = await client.get(
            f"{soest.endpoints.consumer_url}/r1/{SERVICE}/betroffen",
            params={"familienname": NAME},
            headers={"X-Road-Client": str(GEWERBEAMT), "X-Road-UserId": CLERK},
        )
    assert reply.status_code == 200, reply.text
    assert SUBJECT_IDNR in reply.text


def file_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


def test_a_provider_with_a_data_key_seals_what_it_logs(
    snet: LocalNet, capsys: pytest.CaptureFixture[str]
) -> None:
    lipp_config = snet.nodes[LIPPSTADT.ags].config
    key_file = with_data_key(lipp_config, "wrong passphrase")
    with pytest.raises(ConfigError, match="wrong passphrase"):
        asyncio.run(Node(load_config(lipp_config)).start())
    with_data_key(lipp_config, "lippstadt data key")

    async def run() -> Path:
        lipp = Node(load_config(lipp_config))
        soest = Node(load_config(snet.nodes[SOEST.ags].config))
        await lipp.start()
        await soest.start()
        try:
            await exchange(soest)
            tracker_db = lipp.log.path
        finally:
            await soest.stop()
            await lipp.stop()
        return tracker_db

    db = asyncio.run(run())
    # The consumer's node has no data key: its file holds the exchange in the clear,
    # which shows the grep below would find it.
    consumer = file_bytes(Path(load_config(snet.nodes[SOEST.ags].config).node.log_location))
    assert NAME.encode() in consumer and CLERK.encode() in consumer
    provider = file_bytes(db)
    for secret in (NAME, CLERK, SUBJECT_IDNR):
        assert secret.encode() not in provider, secret
    with pytest.raises(LogStoreError, match="sealed at rest"):
        open_store(db).entries()
    from gateway.keys.datakey import load_data_key

    store = open_store(db, load_data_key(key_file, b"lippstadt data key"))
    usage = Tracker(store, []).find_usage(SERVICE.provider, SUBJECT_IDNR)
    assert [(u.client, u.user_id, u.status) for u in usage] == [(str(GEWERBEAMT), CLERK, 200)]
    capsys.readouterr()
    passphrase = str(lipp_config.parent / "data-key.pass")
    show = ["log", "show", "--db", str(db), "--data-key", str(key_file)]
    main([*show, "--data-key-passphrase-file", passphrase])
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert any(row["header"].get("user_id") == CLERK for row in shown)


def test_a_provider_whose_data_key_is_kept_by_a_token(
    snet: LocalNet,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The data key file holds only what the token's AES key encrypted: the node
    decrypts it through the token at start, seals what it logs and reads it back; no
    byte of the node's directory is the data key, and a wrong PIN stops the start."""
    import base64

    from pkcs11 import KeyType, Mechanism, ObjectClass
    from pkcs11.mechanisms import GCMParams
    from pkcs11.types import DecryptMixin

    from gateway.core.encoding import b64url_decode
    from gateway.keys.pkcs11 import open_session
    from gateway.node.startup import node_data_key
    from tests.softhsm import SOFTHSM_MODULE, make_soft_token

    token = make_soft_token(tmp_path / "hsm", monkeypatch, "lippstadt-data")
    lipp_config = snet.nodes[LIPPSTADT.ags].config
    original = lipp_config.read_text()
    key_file = lipp_config.parent / "data-token.key"
    main(
        [
            "node", "data-key", "--out", str(key_file), "--token", token.label,
            "--module", str(SOFTHSM_MODULE), "--key-label", "data-kek",
            "--pin-file", str(token.pin_file),
        ]
    )  # fmt: skip
    wrong_pin = tmp_path / "wrong-pin"
    wrong_pin.write_text("111111\n")
    wrong_pin.chmod(0o600)

    def configure(pin_file: Path) -> None:
        base = original.split("\n[logging]\n", 1)[0]
        lipp_config.write_text(
            base + f'\n[logging]\ndata_key = "{key_file.name}"\n'
            f'data_key_token = {{ module = "{SOFTHSM_MODULE}", label = "{token.label}", '
            f'key_label = "data-kek", pin_file = "{pin_file}" }}\n'
        )

    try:
        configure(wrong_pin)
        with pytest.raises(
            ConfigError, match=r"PIN of token 'lippstadt-data' \(from .*\) is wrong"
        ):
            asyncio.run(Node(load_config(lipp_config)).start())
        configure(token.pin_file)

        async def run() -> Path:
            lipp = Node(load_config(lipp_config))
            soest = Node(load_config(snet.nodes[SOEST.ags].config))
            await lipp.start()
            await soest.start()
            try:
                await exchange(soest)
                return lipp.log.path
            finally:
                await soest.stop()
                await lipp.stop()

        db = asyncio.run(run())
        for secret in (NAME, CLERK, SUBJECT_IDNR):
            assert secret.encode() not in file_bytes(db), secret
        data_key = node_data_key(load_config(lipp_config))  # through the token, as at start
        assert data_key is not None
        usage = Tracker(open_store(db, data_key), []).find_usage(SERVICE.provider, SUBJECT_IDNR)
        assert [(u.client, u.user_id) for u in usage][-1] == (str(GEWERBEAMT), CLERK)
        capsys.readouterr()
        show = ["log", "show", "--db", str(db), "--data-key", str(key_file)]
        show += ["--message-id", usage[-1].message_id]  # the earlier test's are another key's
        with pytest.raises(SystemExit):  # the file names its token: the command needs it
            main(show)
        assert "kept by key 'data-kek' in token 'lippstadt-data'" in capsys.readouterr().err
        token_args = ["--data-key-token-module", str(SOFTHSM_MODULE)]
        main([*show, *token_args, "--data-key-pin-file", str(token.pin_file)])
        shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert any(row["header"].get("user_id") == CLERK for row in shown)

        # The key itself, as only the token can give it: nowhere in the node's directory.
        document = json.loads(key_file.read_text())
        session = open_session(token.ref("data-kek"), token.pin, rw=False)
        try:
            kek = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label="data-kek")
            assert isinstance(kek, DecryptMixin)
            aad = f"{document['format']}:{document['key_id']}".encode()
            raw = kek.decrypt(
                b64url_decode(document["wrapped_key"]),
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(b64url_decode(document["nonce"]), aad),
            )
        finally:
            session.close()
        assert isinstance(raw, bytes) and len(raw) == 32
        forms = (raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw))
        node_dir = lipp_config.parent
        for path in (p for p in node_dir.rglob("*") if p.is_file()):
            content = path.read_bytes()
            assert not any(form.rstrip(b"=") in content for form in forms), path
    finally:
        lipp_config.write_text(original)
