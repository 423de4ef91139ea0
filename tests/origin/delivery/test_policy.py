"""Policy-scoped signatures through HTTP: one signature for a bounded family of variants.

Every variant the policy allows answers 200 with the right pixels; anything else — a width
off the list, a DPR or format not allowed, a tampered policy or template, an expired
policy — is refused; the same keys sign as for per-URL signatures."""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable

import httpx
import pytest

from origin.errors import BadRequest
from origin.policy import Policy, fill, parse_policy, signed_text, template_of
from origin.settings import Settings
from origin.signing import sign_policy, sign_url, signature
from tests.conftest import OPERATOR_SECRET
from tests.imgorigin.test_cli import command
from tests.origin.delivery.conftest import Service, decode, pixel, start_service

POLICY = "w_100to300by100.dpr_2.f_png-webp"


async def policy_url(service: Service, policy: str = POLICY, key: str = OPERATOR_SECRET) -> str:
    image_id, _ = await service.image()  # 400 × 300 quadrants
    return sign_policy(f"/i/{image_id}/w_*,dpr_*,c_fill,ar_4:3/photo.*", key, policy)


def error(answer: httpx.Response) -> tuple[int, str]:
    assert answer.headers["cache-control"] == "no-store"
    return answer.status_code, answer.json()["error"]["code"]


# ---- the grammar (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "w_320to1280by160",
        "w_320-640-1280",
        "w_640",
        "dpr_2",
        "f_avif-webp-jpg",
        "w_100to300by100.dpr_3.f_png.exp_1893456000",
        "f_gif.exp_1",
    ],
)
def test_policy_text_round_trips(text: str) -> None:
    assert parse_policy(text).text() == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "exp_1893456000",  # varies nothing
        "w_320to1280by150",  # (to - from) not a multiple of step
        "w_1280to320by160",
        "w_1to100by1",  # 100 widths
        "w_0320",  # leading zero
        "w_640-320",  # not ascending
        "w_320-320",
        "w_320:1280:160",  # ':' is not in the alphabet
        "f_bmp",
        "f_jpg-jpg",
        "dpr_1.5",  # the maximum is a whole number
        "dpr_5",
        "f_png.w_100",  # out of order
        "w_100.w_200",  # repeated
        "w_100.x_1",
        "w_100.exp_0",
        "w_100.",
        "w_" + "-".join(str(i) for i in range(100, 200)),  # over 512 characters
    ],
)
def test_malformed_policies_are_refused(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_policy(text)


def test_variants_are_bounded() -> None:
    widest = parse_policy("w_64to4096by64.dpr_4.f_jpg-jpeg-png-webp-avif-gif")
    assert len(widest.widths) == 64 and widest.dprs == ("1", "1.5", "2", "3", "4")
    assert len(widest.widths) * len(widest.dprs) * len(widest.formats) == 1920


def test_template_and_signed_text() -> None:
    policy = parse_policy("w_320to1280by160.f_webp-jpg")
    filled = template_of("/i/ID/w_640,c_fill/e_sepia/a.b.webp", policy)
    assert filled.template == "/i/ID/w_*,c_fill/e_sepia/a.b.*"
    assert (filled.width, filled.dpr, filled.ext) == ("640", None, "webp")
    assert signed_text(filled.template, policy.text()) == (
        "/i/ID/w_*,c_fill/e_sepia/a.b.*?p=w_320to1280by160.f_webp-jpg"
    )


def test_sign_policy_is_an_hmac_over_the_url_before_s() -> None:
    template = "/i/0123456789abcdef0123456789abcdef/w_*,c_fill/hero.*"
    url = sign_policy(template, "secret-key-1", Policy(widths=(320, 640), formats=("webp",)))
    text = f"{template}?p=w_320-640.f_webp"
    assert url == f"{text}&s={signature('secret-key-1', text)}"
    soon = sign_policy(template, "k", "w_320-640.f_webp", expires_in=60, now=1_000_000)
    assert "?p=w_320-640.f_webp.exp_1000060&s=" in soon


@pytest.mark.parametrize(
    ("template", "policy"),
    [
        ("/i/ID/w_640/a.*", "w_320-640.f_png"),  # w_ not a placeholder
        ("/i/ID/w_*/a.png", "w_320-640.f_png"),  # extension not a placeholder
        ("/i/ID/w_*/a.*", "w_320-640"),  # a '*' the policy does not fill
        ("/i/ID/c_fill/w_*/a.png", "w_320-640"),  # not in the first stage
        ("/i/ID/a.png", "dpr_2"),
        ("/x/ID/w_*/a.png", "w_320"),
        ("/i/ID/w_*/a.png?exp=1", "w_320"),
        ("/i/ID/w_*/a.png", "w_320:640"),
    ],
)
def test_sign_policy_refuses_mismatched_templates(template: str, policy: str) -> None:
    with pytest.raises(ValueError):
        sign_policy(template, "k", policy)


# ---- through HTTP --------------------------------------------------------------------


async def test_every_allowed_variant_answers_with_its_size(service: Service) -> None:
    url = await policy_url(service)
    sizes = []
    for w, dpr, f in itertools.product((100, 200, 300), ("1", "1.5", "2"), ("png", "webp")):
        answer = await service.get(fill(url, w=w, dpr=dpr, f=f))
        assert answer.status_code == 200, (w, dpr, f, answer.text)
        assert answer.headers["content-type"] == f"image/{f}"
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        image = decode(answer.content)
        width = round(w * float(dpr))
        assert (image.width, image.height) == (width, int(width * 3 / 4 + 0.5))  # half up
        assert pixel(image, 1, 1)[0] > 200 and pixel(image, width - 2, 1)[1] > 180  # red, green
        sizes.append(width)
    assert len(sizes) == 18


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"w": 150, "dpr": "1", "f": "png"}, 403, "bad_signature"),  # off the step
        ({"w": 400, "dpr": "1", "f": "png"}, 403, "bad_signature"),  # above the range
        ({"w": 100, "dpr": "3", "f": "png"}, 403, "bad_signature"),  # above the maximum DPR
        ({"w": 100, "dpr": "1.0", "f": "png"}, 403, "bad_signature"),  # not as listed
        ({"w": 100, "dpr": "1.25", "f": "png"}, 403, "bad_signature"),  # not a DPR step
        ({"w": 100, "dpr": "1", "f": "jpg"}, 403, "bad_signature"),  # format not listed
        ({"w": 100, "dpr": "1", "f": "PNG"}, 403, "bad_signature"),
        ({"w": "0100", "dpr": "1", "f": "png"}, 403, "bad_signature"),  # another spelling
        ({"w": "%31%30%30", "dpr": "1", "f": "png"}, 403, "bad_signature"),
        ({"dpr": "1", "f": "png"}, 403, "bad_signature"),  # placeholder not filled in
    ],
)
async def test_values_outside_the_policy_are_refused(
    service: Service, change: dict[str, str], status: int, code: str
) -> None:
    url = await policy_url(service)
    answer = await service.get(fill(url, **change))  # type: ignore[arg-type]
    assert error(answer) == (status, code)
    assert "policy" in answer.json()["error"]["message"]


async def test_tampering_is_refused(service: Service) -> None:
    url = await policy_url(service)
    good = fill(url, w=100, dpr="1", f="png")
    assert (await service.get(good)).status_code == 200
    tampered = [
        good.replace("p=w_100to300by100", "p=w_100to900by100"),  # a wider policy
        good.replace(".dpr_2.", ".dpr_4."),
        good.replace("f_png-webp", "f_png-webp-jpg"),
        good.replace(",c_fill,", ",c_fill,e_sepia,"),  # another template
        good.replace("/photo.png", "/other.png"),
        good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),  # another signature
        good.replace("&s=", "&s=x"),
    ]
    for url_ in tampered:
        assert error(await service.get(url_)) == (403, "bad_signature"), url_


async def test_the_policy_exp_is_honoured(service: Service) -> None:
    image_id, _ = await service.image()
    template = f"/i/{image_id}/w_*/photo.png"
    fresh = fill(sign_policy(template, OPERATOR_SECRET, "w_50-100", expires_in=600), w=50)
    answer = await service.get(fresh)
    assert answer.status_code == 200 and decode(answer.content).width == 50
    control = re.fullmatch(
        r"public, max-age=([0-9]+), must-revalidate", answer.headers["cache-control"]
    )
    assert control and 590 <= int(control.group(1)) <= 600
    stale = fill(
        sign_policy(template, OPERATOR_SECRET, f"w_50-100.exp_{int(time.time()) - 5}"), w=50
    )
    assert error(await service.get(stale)) == (403, "url_expired")
    far = fill(sign_policy(template, OPERATOR_SECRET, "w_50-100.exp_999999999999"), w=50)
    answer = await service.get(far)  # past the year 9999: was a 500 (no Expires to write)
    assert answer.headers["cache-control"] == "public, max-age=31536000, must-revalidate"


async def test_query_shape(service: Service) -> None:
    url = await policy_url(service)
    good = fill(url, w=100, dpr="1", f="png")
    path, query = good.split("?")
    p, s = query.split("&")
    assert (await service.get(f"{path}?{s}&{p}")).status_code == 200  # order is free
    assert error(await service.get(f"{path}?{p}")) == (403, "bad_signature")  # no s
    assert error(await service.get(f"{path}?{p}&exp=1893456000&{s}")) == (400, "bad_request")
    assert error(await service.get(f"{path}?{p}&{p}&{s}")) == (400, "bad_request")
    assert error(await service.get(f"{path}?p=w_100:300&{s}")) == (400, "bad_request")
    assert error(await service.get(f"{path}?{p}&{s}&x=1")) == (400, "bad_request")


async def test_the_two_schemes_do_not_mix(service: Service) -> None:
    image_id, _ = await service.image()
    path = f"/i/{image_id}/w_100/photo.png"
    per_url = sign_url(path, OPERATOR_SECRET)
    s = per_url.split("s=")[1]
    assert error(await service.get(f"{path}?p=w_100&s={s}")) == (403, "bad_signature")
    policy = sign_policy(f"/i/{image_id}/w_*/photo.png", OPERATOR_SECRET, "w_100")
    s = policy.split("s=")[1]
    assert error(await service.get(f"{path}?s={s}")) == (403, "bad_signature")
    assert error(await service.get(f"/i/{image_id}/w_*/photo.png?s={s}")) == (
        403,
        "bad_signature",
    )


async def test_owner_keys_sign_policies_for_their_images_only(service: Service) -> None:
    image_id, owner = await service.image()
    others_image, _ = await service.image()
    made = await service.http.post("/api/keys", headers=service.bearer(owner))
    key_id, secret = made.json()["id"], made.json()["secret"]
    mine = fill(sign_policy(f"/i/{image_id}/w_*/a.*", secret, "w_64-128.f_webp"), w=64, f="webp")
    answer = await service.get(mine)
    assert answer.status_code == 200 and decode(answer.content).width == 64
    theirs = sign_policy(f"/i/{others_image}/w_*/a.*", secret, "w_64-128.f_webp")
    assert error(await service.get(fill(theirs, w=64, f="webp"))) == (403, "bad_signature")
    await service.http.delete(f"/api/keys/{key_id}", headers=service.bearer(owner))
    assert error(await service.get(mine)) == (403, "bad_signature")


async def test_every_operator_key_signs_policies(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(URL_SIGNING_KEYS=f"old:{OPERATOR_SECRET},new:brand-new-secret")
    async for service in start_service(settings):
        image_id, _ = await service.image()
        for key in (OPERATOR_SECRET, "brand-new-secret"):
            url = sign_policy(f"/i/{image_id}/w_*/a.png", key, "w_32-48")
            assert decode((await service.get(fill(url, w=48))).content).width == 48
        url = sign_policy(f"/i/{image_id}/w_*/a.png", "retired-secret", "w_32-48")
        assert error(await service.get(fill(url, w=48))) == (403, "bad_signature")


async def test_policies_combine_with_f_auto_and_hints(service: Service) -> None:
    image_id, _ = await service.image()
    url = sign_policy(f"/i/{image_id}/w_*,f_auto/a.jpg", OPERATOR_SECRET, "w_100-200")
    answer = await service.get(fill(url, w=200), headers={"Accept": "image/webp"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/webp"
    assert answer.headers["vary"] == "Accept" and decode(answer.content).width == 200
    hinted = sign_policy(f"/i/{image_id}/dpr_*,w_auto:100/a.png", OPERATOR_SECRET, "dpr_2")
    answer = await service.get(fill(hinted, dpr="2"), headers={"Sec-CH-Width": "300"})
    assert answer.status_code == 200 and decode(answer.content).width == 320


def test_the_sign_command_signs_policies(base_env: dict[str, str]) -> None:
    template = "/i/0123456789abcdef0123456789abcdef/w_*,c_fill/hero.*"
    done = command(base_env, "sign", template, "--policy", "w_320to1280by160.f_webp-jpg")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sign_policy(
        template, OPERATOR_SECRET, "w_320to1280by160.f_webp-jpg"
    )
    soon = command(base_env, "sign", template, "--policy", "w_320-640.f_webp", "--expires-in", "60")
    exp = int(soon.stdout.split("exp_")[1].split("&")[0])
    assert abs(exp - (time.time() + 60)) < 30
    assert soon.stdout.strip() == sign_policy(
        template, OPERATOR_SECRET, f"w_320-640.f_webp.exp_{exp}"
    )
    for policy in ("w_320:640", "f_webp"):  # malformed; the template's w_* is not filled
        refused = command(base_env, "sign", template, "--policy", policy)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
