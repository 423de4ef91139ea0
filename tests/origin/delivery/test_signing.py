"""The signature scheme is fixed by a golden vector; docs/signing.md's snippets agree with
it; operator keys rotate; user keys sign for their owner's images only, until deleted."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from origin.settings import Settings
from origin.signing import sign_url
from tests.conftest import OPERATOR_SECRET
from tests.origin.delivery.conftest import Service, decode, signed, start_service

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "signing.md").read_text()
KEY = "secret-key-1"
PATH = "/i/0123456789abcdef0123456789abcdef/w_300,h_200,c_fill/hero.webp"
EXP = 1893456000
S_PLAIN = "rR3X3_BgqhuZlvvaNE1mpfk2YlmACyTYvUy09fK4o0A"
S_EXP = "ertMC11BxJUGs_qzCvFQGXCt7LI8xdhoDgWjEi4EbXw"


def by_hand(key: bytes, canonical: str) -> str:
    mac = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def test_golden_vector() -> None:
    assert by_hand(KEY.encode("utf-8"), PATH) == S_PLAIN
    assert by_hand(KEY.encode("utf-8"), f"{PATH}?exp={EXP}") == S_EXP
    assert len(S_PLAIN) == len(S_EXP) == 43
    assert sign_url(PATH, KEY) == f"{PATH}?s={S_PLAIN}"
    assert sign_url(PATH, KEY, exp=EXP) == f"{PATH}?exp={EXP}&s={S_EXP}"
    assert f"{PATH}?exp={EXP}&s={S_EXP}" in DOC and S_PLAIN in DOC


def test_key_is_the_secret_text_never_decoded() -> None:
    hexlike = "00ff00ff"
    assert sign_url(PATH, hexlike) == f"{PATH}?s={by_hand(b'00ff00ff', PATH)}"
    assert sign_url(PATH, hexlike) != f"{PATH}?s={by_hand(bytes.fromhex(hexlike), PATH)}"


def snippet(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", DOC, re.DOTALL)
    assert found, f"no {language} block in docs/signing.md"
    return found.group(1)


def run(command: list[str]) -> list[str]:
    outputs = []
    for extra in ([], [str(EXP)]):
        done = subprocess.run(
            [*command, PATH, KEY, *extra], capture_output=True, text=True, timeout=30, check=True
        )
        outputs.append(done.stdout.strip())
    return outputs


EXPECTED = [f"{PATH}?s={S_PLAIN}", f"{PATH}?exp={EXP}&s={S_EXP}"]


def test_python_snippet(tmp_path: Path) -> None:
    program = tmp_path / "sign.py"
    program.write_text(snippet("python"))
    assert run([sys.executable, str(program)]) == EXPECTED


SOURCE_PATH = "/r/shop/w_300,h_200,c_fill/-/new%20in/caf%C3%A9@2x.jpg@webp"
SOURCE_S = (
    "hojeJroyJ4z6Mihn3qFiCFwuOVtE4Oznu6xC7N976Sk",
    "OhVUbh1GDHYY_FS2MrT5gZSon2Rfo7fX1ffAf1R1OWs",
)


def test_the_snippets_sign_source_urls(tmp_path: Path) -> None:
    """docs/signing.md's /r/ vector, by hand, by sign_url and by the Python and Node snippets."""
    plain, with_exp = SOURCE_S
    assert by_hand(KEY.encode(), SOURCE_PATH) == plain
    assert by_hand(KEY.encode(), f"{SOURCE_PATH}?exp={EXP}") == with_exp
    assert sign_url(SOURCE_PATH, KEY) == f"{SOURCE_PATH}?s={plain}"
    assert SOURCE_PATH in DOC and plain in DOC and with_exp in DOC
    program = tmp_path / "sign.py"
    program.write_text(snippet("python"))
    commands = [[sys.executable, str(program)]]
    node = shutil.which("node")
    if node is not None:
        script = tmp_path / "sign.js"
        script.write_text(snippet("javascript"))
        commands.append([node, str(script)])
    for command in commands:
        outputs = [
            subprocess.run(
                [*command, SOURCE_PATH, KEY, *extra], capture_output=True, text=True, check=True
            ).stdout.strip()
            for extra in ([], [str(EXP)])
        ]
        assert outputs == [f"{SOURCE_PATH}?s={plain}", f"{SOURCE_PATH}?exp={EXP}&s={with_exp}"]


def test_node_snippet(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript snippet of docs/signing.md is untested")
    program = tmp_path / "sign.js"
    program.write_text(snippet("javascript"))
    assert run([node, str(program)]) == EXPECTED


def test_php_snippet(tmp_path: Path) -> None:
    php = shutil.which("php")
    if php is None:
        pytest.skip("php is not installed: the PHP snippet of docs/signing.md is untested")
    program = tmp_path / "sign.php"
    program.write_text(snippet("php"))
    assert run([php, str(program)]) == EXPECTED


async def test_two_operator_keys_both_verify(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(URL_SIGNING_KEYS=f"old:{OPERATOR_SECRET},new:brand-new-secret")
    async for service in start_service(settings):
        image_id, _ = await service.image()
        path = f"/i/{image_id}/w_64/a.png"
        for key in (OPERATOR_SECRET, "brand-new-secret"):
            answer = await service.get(sign_url(path, key))
            assert answer.status_code == 200
            assert decode(answer.content).width == 64
        assert (await service.get(sign_url(path, "retired-secret"))).status_code == 403


async def test_user_keys_sign_for_their_owner_only_until_deleted(service: Service) -> None:
    image_id, owner = await service.image()
    others_image, _ = await service.image()
    made = await service.http.post("/api/keys", headers=service.bearer(owner))
    assert made.status_code == 201
    key_id, secret = made.json()["id"], made.json()["secret"]
    mine = sign_url(f"/i/{image_id}/w_32/a.png", secret)
    answer = await service.get(mine)
    assert answer.status_code == 200 and decode(answer.content).width == 32
    theirs = await service.get(sign_url(f"/i/{others_image}/w_32/a.png", secret))
    assert theirs.status_code == 403
    assert theirs.json()["error"]["code"] == "bad_signature"
    gone = await service.http.delete(f"/api/keys/{key_id}", headers=service.bearer(owner))
    assert gone.status_code == 204
    after = await service.get(mine)  # at once, in this process (memory tier or not)
    assert after.status_code == 403
    assert (await service.get(signed(f"/i/{image_id}/w_32/a.png"))).status_code == 200
