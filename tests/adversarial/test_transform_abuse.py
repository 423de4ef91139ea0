"""Transform abuse through the whole app over HTTP (the parser alone is fuzzed elsewhere):
every bad numeric token, huge chains, odd encodings of separators and signatures. Each is a
4xx with the error contract and ``Cache-Control: no-store`` — never a 500, never a wrong
image — and 500 concurrent requests for one cold URL render it once."""

from __future__ import annotations

import asyncio
import base64
import resource

import httpx

from origin.signing import signature
from tests.conftest import OPERATOR_SECRET
from tests.origin.delivery.conftest import Service, decode, signed

# Every numeric token in a context where it is otherwise valid; {} is the value under test.
NUMERIC = [
    "w_{}",
    "h_{}",
    "w_100,dpr_{}",
    "w_50,h_50,c_crop,x_{}",
    "w_50,h_50,c_crop,y_{}",
    "w_100,ar_{}:1",
    "w_100,ar_1:{}",
    "w_100/r_{}",
    "w_100/e_blur:{}",
    "w_100/e_sharpen:{}",
    "w_100/e_brightness:{}",
    "w_100/e_contrast:{}",
    "w_100/e_saturation:{}",
    "w_100/e_pixelate:{}",
    "w_100,q_{}",
    "w_100/l_text:hi,o_{}",
    "w_100/l_text:hi,fs_{}",
    "w_100/l_text:hi,x_{}",
]
# Never a number under the URL grammar (plain ASCII decimals only): always a 400.
NOT_NUMBERS = [
    "1e309",
    "1e3",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "0o7",
    "0b1",
    "1_0",
    "%2B5",  # +5
    "%205",  # " 5"
    "5%20",
    "%D9%A3",  # ARABIC-INDIC DIGIT THREE: int() takes it, the grammar must not
    "%EF%BC%95",  # FULLWIDTH DIGIT FIVE
    "1" * 400,
    "0" * 300 + "5",
    "-" + "9" * 50,
    "",
    "1.5.5",
    "--1",
]
# Plain numbers some tokens take and others refuse: 200 or 400, never anything else.
EDGE_NUMBERS = ["0", "-1", "-0", "0.0", "1.0", "99999999999"]


def assert_contract_error(answer: httpx.Response, *codes: str) -> str:
    assert answer.status_code in (400, 403, 404), (answer.status_code, answer.text[:300])
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert answer.headers["cache-control"] == "no-store"
    assert "Traceback" not in answer.text
    code = str(body["error"]["code"])
    if codes:
        assert code in codes, (code, answer.text[:300])
    return code


async def test_every_numeric_token_with_hostile_values(service: Service) -> None:
    image_id, _ = await service.image()
    seen: dict[int, int] = {}
    for template in NUMERIC:
        for value in NOT_NUMBERS + EDGE_NUMBERS:
            chain = template.format(value)
            answer = await service.get(signed(f"/i/{image_id}/{chain}/a.png"))
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            where = f"{chain[:80]} -> {answer.status_code} {answer.text[:200]}"
            if value in NOT_NUMBERS or answer.status_code != 200:
                assert answer.status_code == 400, where
                assert_contract_error(answer, "bad_transform", "limit_exceeded")
            else:
                assert answer.headers["content-type"] == "image/png", where
                decode(answer.content)
    print(f"\nnumeric abuse: {sum(seen.values())} requests, statuses {seen}")


async def test_huge_chains_are_refused(service: Service) -> None:
    image_id, _ = await service.image()
    cases = {
        "200 tokens in a stage": ",".join(["e_grayscale"] + [f"w_{n}" for n in range(1, 200)]),
        "200 stages": "/".join(["e_grayscale"] * 200),
        "8 KB of stages": "/".join(["w_100"] * 1400)[:8192],
        "8 KB token": "w_" + "9" * 8190,
        "8 KB text overlay": "w_100/l_text:" + "a" * 8180,
        "8 KB of commas": "w_100" + "," * 8187,
        "8 KB of slashes": "w_100" + "/" * 8187,
    }
    for name, chain in cases.items():
        answer = await service.get(signed(f"/i/{image_id}/{chain}/a.png"))
        assert answer.status_code == 400, (name, answer.status_code, answer.text[:200])
        assert_contract_error(answer, "bad_transform", "limit_exceeded")


async def test_unknown_query_parameters_are_refused(service: Service) -> None:
    image_id, _ = await service.image()
    url = signed(f"/i/{image_id}/w_100/a.png")
    for extra in ("&w=9999", "&foo", "&s=x", "&exp=1", "&S=x", "&s", "&%73=x", "&"):
        answer = await service.get(url + extra)
        assert answer.status_code in (400, 403), (extra, answer.status_code)
        assert_contract_error(answer)
    assert (await service.get(url)).status_code == 200


def _alphabet_variants(path: str) -> list[str]:
    raw = base64.urlsafe_b64decode(signature(OPERATOR_SECRET, path) + "=")
    standard = base64.b64encode(raw).decode()  # '+' '/' and '=' padding
    urlsafe_padded = base64.urlsafe_b64encode(raw).decode()
    return [
        standard,
        standard.rstrip("="),
        standard.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"),
        urlsafe_padded,
        urlsafe_padded.replace("=", "%3D"),
        signature(OPERATOR_SECRET, path) + "%3D",
        raw.hex(),
        signature(OPERATOR_SECRET, path).upper(),
        " " + signature(OPERATOR_SECRET, path),
    ]


async def test_signatures_in_another_alphabet_or_padded_are_refused(service: Service) -> None:
    # a digest whose base64 has '+' or '/' where base64url has '-' or '_' makes the test bite
    image_id, _ = await service.image()
    for width in range(100, 400):
        path = f"/i/{image_id}/w_{width}/a.png"
        std = base64.b64encode(base64.urlsafe_b64decode(signature(OPERATOR_SECRET, path) + "="))
        if b"+" in std or b"/" in std:
            break
    for sig in _alphabet_variants(path):
        answer = await service.get(f"{path}?s={sig}")
        assert answer.status_code in (400, 403), (sig, answer.status_code, answer.text[:200])
        assert_contract_error(answer)
    assert (await service.get(signed(path))).status_code == 200


async def test_encoded_separators_are_never_separators(service: Service) -> None:
    image_id, _ = await service.image()
    base = f"/i/{image_id}"
    cases = [
        f"{base}/w_100%2Ch_50/a.png",
        f"{base}/w_100%2ch_50/a.png",
        f"{base}/w_100%2Fe_grayscale/a.png",
        f"{base}/w_100%2fe_grayscale/a.png",
        f"{base}/w_100%252Ch_50/a.png",
        f"{base}/w_100%252Fe_grayscale/a.png",
        f"{base}%2Fw_100/a.png",
        f"{base}/w_100/a.png/",
        f"{base}/w_100//a.png",
        f"{base}//w_100/a.png",
        f"{base}/w_100/a.png%2F",
        f"{base}/w%5F100/a.png",
        f"{base}/w_100/a%2Epng",
        f"{base}/w_100,/a.png",
        f"{base}/,w_100/a.png",
    ]
    for path in cases:
        # signed exactly as sent: the signature is right, the path must still not render
        # as if the encoded character were a separator
        answer = await service.get(signed(path))
        where = (path, answer.status_code, answer.text[:200])
        assert answer.status_code in (400, 403, 404), where
        assert_contract_error(answer)
    # the decoded twin's signature does not carry over to the encoded form
    good = f"{base}/w_100,h_50/a.png"
    s = signed(good).split("?s=")[1]
    for path in (f"{base}/w_100%2Ch_50/a.png", f"{base}/w_100,h%5F50/a.png"):
        answer = await service.get(f"{path}?s={s}")
        assert answer.status_code == 403, (path, answer.status_code)
        assert_contract_error(answer, "bad_signature")


def _rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


async def test_500_concurrent_requests_for_one_cold_url_render_once(service: Service) -> None:
    image_id, _ = await service.image(width=2000, height=1500)
    url = signed(f"/i/{image_id}/w_1500,h_1000,c_fill/e_blur:200/a.png")
    peak_before = _rss_kib()
    answers = await asyncio.gather(*(service.get(url) for _ in range(500)))
    peak_after = _rss_kib()
    statuses = {a.status_code for a in answers}
    assert statuses == {200}, statuses
    assert len({a.content for a in answers}) == 1
    assert await service.metric("imgorigin_cache_hits_total", tier="render") == 1
    grew = (peak_after - peak_before) / 1024
    size = len(answers[0].content) / 1024 / 1024
    print(
        f"\n500 concurrent cold requests: 1 render, {size:.1f} MB answer, peak RSS +{grew:.0f} MB"
    )
    # 500 copies of the answer are held by this test's client; the server adds one render
    assert grew < 500 * size + 300
