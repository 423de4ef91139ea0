"""docs/responsive.md's policy snippets (Python and Node) agree with the test vector and with
origin.signing.sign_policy, and the URLs they make, filled in, verify on a running origin."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from origin.policy import fill
from origin.signing import sign_policy
from tests.conftest import OPERATOR_SECRET
from tests.origin.delivery.conftest import Service, decode

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "responsive.md").read_text()
KEY = "secret-key-1"
TEMPLATE = "/i/0123456789abcdef0123456789abcdef/w_*,dpr_*,c_fill/hero.*"
POLICY = "w_320to1280by160.dpr_2.f_avif-webp-jpg"
EXP = ".exp_1893456000"
S_EXP = "ES5VjjhAjL1T277zVSp4I6_3HOpO23Sp6naWO3ZcEo8"
S_PLAIN = "d6ujoArEYGS7xs3UAERwyYdg4ndeq-TIxKQ5yM6gkHU"


def section() -> str:
    found = re.search(r"\n## Policy-scoped signatures\n(.*?)(?=\n## |\Z)", DOC, re.DOTALL)
    assert found, "no '## Policy-scoped signatures' section in docs/responsive.md"
    return found.group(1)


def snippet(language: str) -> str:
    found = re.search(rf"```{language}\n(.*?)```", section(), re.DOTALL)
    assert found, f"no {language} block in the policy section of docs/responsive.md"
    return found.group(1)


def test_the_vector() -> None:
    for policy, s in ((POLICY + EXP, S_EXP), (POLICY, S_PLAIN)):
        assert sign_policy(TEMPLATE, KEY, policy) == f"{TEMPLATE}?p={policy}&s={s}"
        assert s in section()
    assert f"`{TEMPLATE}`" in section() and f"`{POLICY}{EXP}`" in section()


def program(language: str, tmp_path: Path) -> list[str]:
    if language == "python":
        path = tmp_path / "sign_policy.py"
        path.write_text(snippet("python"))
        return [sys.executable, str(path)]
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "node is not installed: the JavaScript snippet of docs/responsive.md is untested"
        )
    path = tmp_path / "sign_policy.js"
    path.write_text(snippet("javascript"))
    return [node, str(path)]


def run(command: list[str], template: str, secret: str, policy: str) -> str:
    done = subprocess.run(
        [*command, template, secret, policy], capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize("language", ["python", "javascript"])
async def test_snippet(language: str, tmp_path: Path, service: Service) -> None:
    command = program(language, tmp_path)
    for policy, s in ((POLICY + EXP, S_EXP), (POLICY, S_PLAIN)):
        assert run(command, TEMPLATE, KEY, policy) == f"{TEMPLATE}?p={policy}&s={s}"
    image_id, _ = await service.image()
    template = f"/i/{image_id}/w_*,dpr_*,c_fill,ar_1:1/hero.*"
    url = run(command, template, OPERATOR_SECRET, "w_40to120by40.dpr_2.f_webp-png")
    assert url == sign_policy(template, OPERATOR_SECRET, "w_40to120by40.dpr_2.f_webp-png")
    answer = await service.get(fill(url, w=80, dpr="1.5", f="webp"))
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    image = decode(answer.content)
    assert (image.width, image.height) == (120, 120)
    refused = await service.get(fill(url, w=100, dpr="1.5", f="webp"))
    assert refused.status_code == 403


def test_the_page_snippet_fills_what_the_policy_allows() -> None:
    """The <script> of the page example, run by Node on the signed template."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = re.search(r"<script>\n(.*?)</script>", section(), re.DOTALL)
    assert script
    body = (
        script.group(1)
        .replace(
            'document.getElementById("hero")',
            "{ clientWidth: 500, dataset: { src: process.argv[1] } }",
        )
        .replace("window.devicePixelRatio", "2.625")
    )
    url = sign_policy(TEMPLATE, KEY, POLICY)
    done = subprocess.run(
        [node, "-e", body + "\nconsole.log(img.src);", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert done.stdout.strip() == fill(url, w=640, dpr="2", f="webp")
