"""The URL grammar: parsing, canonical forms, every error path, and a fuzz property."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from origin.errors import BadTransform, LimitExceeded, OriginError
from origin.transforms.effects import EFFECTS
from origin.transforms.formats import negotiate_format
from origin.transforms.limits import Limits
from origin.transforms.parse import parse_chain, parse_path
from origin.transforms.registry import TOKENS
from tests.origin.conftest import IMAGE_ID, OTHER_ID

ID = IMAGE_ID


def url(chain: str, name: str = "hero.jpg") -> str:
    return f"/i/{ID}/{chain}/{name}" if chain else f"/i/{ID}/{name}"


def canon(chain: str, name: str = "x.jpg", **kw: object) -> str:
    return parse_path(url(chain, name), **kw).canonical()  # type: ignore[arg-type]


# ---------------------------------------------------------------- one row per token form


@pytest.mark.parametrize(
    ("chain", "stage"),
    [
        ("w_300", "w_300"),
        ("h_200", "h_200"),
        ("w_0.5", "w_0.5"),
        ("w_.25", "w_0.25"),
        ("h_1.0", "h_1.0"),  # a share keeps its point: h_1 is 1 px
        ("w_300,h_200,c_fit", "w_300,h_200"),
        ("w_300,h_200,c_fill", "w_300,h_200,c_fill"),
        ("w_300,c_limit", "w_300,c_limit"),
        ("w_300,h_200,c_pad", "w_300,h_200,c_pad"),
        ("w_300,h_200,c_scale", "w_300,h_200,c_scale"),
        ("w_30,h_20,c_crop", "w_30,h_20,c_crop"),
        ("w_30,c_crop,x_5,y_6", "w_30,c_crop,x_5,y_6"),
        ("c_crop,x_5", "c_crop,x_5"),
        ("w_30,h_20,c_fill,g_center", "w_30,h_20,c_fill"),
        ("w_30,h_20,c_fill,g_north", "w_30,h_20,c_fill,g_north"),
        ("w_30,h_20,c_fill,g_south_west", "w_30,h_20,c_fill,g_south_west"),
        ("w_30,h_20,c_fill,g_auto", "w_30,h_20,c_fill,g_auto"),
        ("w_30,h_20,c_crop,g_entropy", "w_30,h_20,c_crop,g_entropy"),
        ("w_30,h_20,c_pad,g_east", "w_30,h_20,c_pad,g_east"),
        ("w_300,ar_3:2", "w_300,h_200"),
        ("h_200,ar_32:18", "w_356,h_200"),
        ("w_0.5,ar_16:9", "w_0.5,ar_16:9"),
        ("ar_1:1,c_fill", "ar_1:1,c_fill"),
        ("ar_2:1,c_pad", "ar_2:1,c_pad"),
        ("w_150,dpr_2", "w_300"),
        ("w_100,h_50,dpr_1.5", "w_150,h_75"),
        ("w_0.25,dpr_2", "w_0.5"),
        ("r_90", "r_90"),
        ("r_-90", "r_270"),
        ("r_360", ""),
        ("r_45", "r_45"),
        ("fl_h", "fl_h"),
        ("fl_v", "fl_v"),
        ("fl_hv", "fl_hv"),
        ("e_grayscale", "e_grayscale"),
        ("e_sepia", "e_sepia"),
        ("e_blur", "e_blur:100"),
        ("e_blur:300", "e_blur:300"),
        ("e_sharpen", "e_sharpen:100"),
        ("e_sharpen:2000", "e_sharpen:2000"),
        ("e_brightness:-100", "e_brightness:-100"),
        ("e_contrast:50", "e_contrast:50"),
        ("e_saturation:-20", "e_saturation:-20"),
        ("e_pixelate", "e_pixelate:5"),
        ("e_pixelate:200", "e_pixelate:200"),
        ("e_grayscale,e_blur:5", "e_grayscale,e_blur:5"),
        ("e_blur:5,e_grayscale", "e_blur:5,e_grayscale"),
        ("b_FF0000", "b_ff0000"),
        ("b_ff000080", "b_ff000080"),
        ("b_white", "b_ffffff"),
        ("b_black", "b_000000"),
        ("b_transparent", "b_00000000"),
        (f"l_{OTHER_ID}", f"l_{OTHER_ID}"),
        (
            f"l_{OTHER_ID},w_100,g_north_west,x_5,y_6,o_50",
            f"l_{OTHER_ID},w_100,g_north_west,x_5,y_6,o_50",
        ),
        (f"l_{OTHER_ID},w_0.2", f"l_{OTHER_ID},w_0.2"),
        ("l_text:Hello%20World", "l_text:Hello%20World"),
        ("l_text:a%2Cb%2Fc", "l_text:a%2Cb%2Fc"),
        ("l_text:Hi,co_ff0000,fs_24", "l_text:Hi,co_ff0000,fs_24"),
        ("l_text:Hi,co_black,g_south_east", "l_text:Hi"),
        ("l_text:%E2%9C%93", "l_text:%E2%9C%93"),
        ("l_text:%20hi%20", "l_text:%20hi%20"),
    ],
)
def test_token_forms(chain: str, stage: str) -> None:
    plan = parse_path(url(chain))
    assert "/".join(s.canonical() for s in plan.stages) == stage


def test_effects_keep_written_order() -> None:
    (stage,) = parse_chain("e_sepia,e_blur:3,e_grayscale")
    assert [(step.transform, step.value) for step in stage] == [
        (EFFECTS["sepia"], None),
        (EFFECTS["blur"], 3),
        (EFFECTS["grayscale"], None),
    ]


def test_percent_encoded_separators_are_literal() -> None:
    (stage,) = parse_path(url("l_text:a%2Cb%2Fc%25")).stages
    assert stage.value("overlay").text == "a,b/c%"


def test_overlay_ids_and_defaults() -> None:
    plan = parse_path(url(f"w_300/l_{OTHER_ID}/l_{OTHER_ID},g_north"))
    assert plan.overlay_ids == (OTHER_ID,)
    overlay = plan.stages[1].value("overlay")
    assert (overlay.image_id, overlay.gravity, overlay.opacity) == (OTHER_ID, "south_east", 100)


@pytest.mark.parametrize(
    ("name", "fmt", "ext"),
    [
        ("x.jpg", "jpeg", "jpg"),
        ("x.JPEG", "jpeg", "jpeg"),
        ("x.png", "png", "png"),
        ("x.webp", "webp", "webp"),
        ("x.avif", "avif", "avif"),
        ("x.gif", "gif", "gif"),
        ("my.photo.webp", "webp", "webp"),
        ("x.json", None, "json"),
    ],
)
def test_extension_gives_format(name: str, fmt: str | None, ext: str) -> None:
    plan = parse_path(url("", name))
    assert (plan.format, plan.ext, plan.metadata_only) == (fmt, ext, ext == "json")
    assert plan.name == name.rpartition(".")[0]
    assert plan.stages == ()


def test_plan_tokens() -> None:
    plan = parse_path(url("w_10,f_webp,q_70/e_sepia", "x.jpg"))
    assert (plan.format, plan.quality, plan.auto_quality, plan.negotiated) == (
        "webp",
        70,
        False,
        False,
    )
    plan = parse_path(url("q_auto", "x.png"))
    assert (plan.quality, plan.auto_quality, plan.stages) == (None, True, ())
    json_plan = parse_path(url("f_png", "x.json"))
    assert (json_plan.format, json_plan.metadata_only) == ("png", True)


@pytest.mark.parametrize(
    ("accept", "ext", "fmt"),
    [
        ("image/avif,image/webp,*/*", "x.jpg", "avif"),
        ("image/webp,*/*;q=0.8", "x.jpg", "webp"),
        ("image/avif;q=0,image/webp", "x.png", "webp"),
        ("image/avif;q=0, image/webp;q=0", "x.png", "png"),
        ("*/*", "x.png", "png"),
        (None, "x.gif", "gif"),
        ("image/AVIF;q=0.5", "x.jpg", "avif"),
        ("image/webp;q=nan", "x.jpg", "jpeg"),
        (None, "x.json", None),
        ("image/webp", "x.json", "webp"),
    ],
)
def test_f_auto_negotiates(accept: str | None, ext: str, fmt: str | None) -> None:
    plan = parse_path(url("f_auto", ext), accept=accept)
    assert plan.format == fmt
    assert plan.negotiated


def test_negotiate_format_fallback() -> None:
    assert negotiate_format("text/html", "jpeg") == "jpeg"
    assert negotiate_format("image/webp;q=0.1, image/avif;q=0.9", "png") == "avif"


# ---------------------------------------------------------------- canonical forms


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("h_200,w_300,c_fit/x.jpg", "w_300,h_200/x.jpeg"),
        ("w_300,h_200/seo-name.jpg", "w_300,h_200/other.jpg"),
        ("w_150,dpr_2/x.jpg", "w_300/x.jpg"),
        ("w_300,ar_3:2/x.jpg", "w_300,h_200/x.jpg"),
        ("r_-90/x.jpg", "r_270/x.jpg"),
        ("r_0/x.jpg", "x.jpg"),
        ("w_0.50/x.jpg", "w_.5/x.jpg"),
        ("w_%33%30%30/x.jpg", "w_300/x.jpg"),
        ("l_text:a%2cb/x.jpg", "l_text:a%2Cb/x.jpg"),
        ("l_text:%41/x.jpg", "l_text:A/x.jpg"),
        ("b_FFFFFF,r_45/x.jpg", "r_45,b_white/x.jpg"),
        ("t_thumb/x.jpg", "w_300,h_200,c_fill/x.jpg"),
        ("t_gray,w_10/x.jpg", "e_grayscale,w_10/x.jpg"),
        ("t_two/x.jpg", "w_100/e_sepia/x.jpg"),
        ("w_10,c_crop,x_5,g_north/x.jpg", "w_10,c_crop,x_5/x.jpg"),
        ("f_jpg/x.png", "x.jpg"),
        ("e_blur/x.jpg", "e_blur:100/x.jpg"),
        ("v_2/w_300/x.jpg", "w_300/x.jpg"),  # a version only makes the URL new
        ("v_1000000000/w_300/x.jpg", "w_300/x.jpg"),  # the documented top (7 digits were)
        ("v_7,w_300/x.jpg", "w_300/x.jpg"),
    ],
)
def test_canonical_equal(a: str, b: str) -> None:
    presets = {"thumb": "w_300,h_200,c_fill", "gray": "e_grayscale", "two": "w_100/e_sepia"}
    assert (
        parse_path(f"/i/{ID}/{a}", presets=presets).canonical()
        == parse_path(f"/i/{ID}/{b}", presets=presets).canonical()
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("w_300/x.jpg", "w_300/x.png"),
        ("w_300/x.jpg", "h_300/x.jpg"),
        ("w_300/e_sepia/x.jpg", "e_sepia/w_300/x.jpg"),
        ("e_sepia,e_blur/x.jpg", "e_blur,e_sepia/x.jpg"),
        ("q_80/x.jpg", "x.jpg"),
        ("q_auto/x.jpg", "x.jpg"),
        ("x.json", "x.jpg"),
        ("w_1.0/x.jpg", "w_1/x.jpg"),  # the whole width is not 1 px
        ("w_0.5,dpr_2/x.jpg", "w_1/x.jpg"),
        ("w_1,dpr_2/x.jpg", "w_1.0,dpr_2/x.jpg"),
    ],
)
def test_canonical_different(a: str, b: str) -> None:
    assert parse_path(f"/i/{ID}/{a}").canonical() != parse_path(f"/i/{ID}/{b}").canonical()


def test_canonical_golden() -> None:
    assert canon("h_200,w_300,c_fit") == f"{ID}/w_300,h_200/f_jpeg"
    assert canon("c_fill,w_300,h_200,g_north/e_blur,fl_h,q_70", "x.webp") == (
        f"{ID}/w_300,h_200,c_fill,g_north/fl_h,e_blur:100/f_webp,q_70"
    )
    assert canon("", "x.json") == f"{ID}/f_source,json"


def test_parse_chain_matches_parse_path() -> None:
    chain = "w_300,h_200,c_fill/e_grayscale"
    assert parse_chain(chain) == parse_path(url(chain)).stages
    assert parse_chain("") == ()
    assert [s.canonical() for s in parse_chain("w_300,f_webp")] == ["w_300"]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("chain", "error", "named"),
    [
        ("zz_1", BadTransform, "zz_1"),
        ("w300", BadTransform, "w300"),
        ("_300", BadTransform, "_300"),
        ("W_300", BadTransform, "W_300"),
        ("w_300,w_200", BadTransform, "w_200"),
        ("e_blur,e_blur:3", BadTransform, "e_blur:3"),
        ("w_300,", BadTransform, "malformed"),
        ("w_", BadTransform, "w_"),
        ("w_abc", BadTransform, "w_abc"),
        ("w_0", BadTransform, "w_0"),
        ("w_-5", BadTransform, "w_-5"),
        ("w_0.0", BadTransform, "w_0.0"),
        ("w_1.5", BadTransform, "w_1.5"),
        ("w_1e3", BadTransform, "w_1e3"),
        ("w_\u0663\u0660", BadTransform, "w_"),
        ("w_9000", LimitExceeded, "w_9000"),
        ("h_8193", LimitExceeded, "h_8193"),
        ("w_5000,dpr_2", LimitExceeded, "w_5000"),
        ("h_4097,dpr_2", LimitExceeded, "h_4097"),
        ("w_8000,ar_1:2", LimitExceeded, "ar_1:2"),
        ("w_10,c_zoom", BadTransform, "c_zoom"),
        ("c_fill", BadTransform, "c_fill"),
        ("w_10,h_10,c_fill,g_up", BadTransform, "g_up"),
        ("w_10,g_north", BadTransform, "g_north"),
        ("w_10,h_10,c_pad,g_auto", BadTransform, "g_auto"),
        ("w_10,x_5", BadTransform, "x_5"),
        ("w_10,c_crop,x_-1", BadTransform, "x_-1"),
        ("w_10,ar_16", BadTransform, "ar_16"),
        ("w_10,ar_0:1", BadTransform, "ar_0:1"),
        ("w_10,h_10,ar_1:1", BadTransform, "ar_1:1"),
        ("ar_1:1", BadTransform, "ar_1:1"),
        ("w_10,dpr_5", BadTransform, "dpr_5"),
        ("w_10,dpr_0.5", BadTransform, "dpr_0.5"),
        ("w_10,dpr_1.234", BadTransform, "dpr_1.234"),
        ("dpr_2", BadTransform, "dpr_2"),
        ("r_361", BadTransform, "r_361"),
        ("r_1.5", BadTransform, "r_1.5"),
        ("fl_x", BadTransform, "fl_x"),
        ("e_glow", BadTransform, "e_glow"),
        ("e_grayscale:5", BadTransform, "e_grayscale:5"),
        ("e_blur:0", BadTransform, "e_blur:0"),
        ("e_blur:2001", BadTransform, "e_blur:2001"),
        ("e_sharpen:x", BadTransform, "e_sharpen:x"),
        ("e_brightness", BadTransform, "e_brightness"),
        ("e_brightness:101", BadTransform, "e_brightness:101"),
        ("e_contrast:-101", BadTransform, "e_contrast:-101"),
        ("e_saturation:1000", BadTransform, "e_saturation:1000"),
        ("e_pixelate:201", BadTransform, "e_pixelate:201"),
        ("b_red", BadTransform, "b_red"),
        ("b_ff00", BadTransform, "b_ff00"),
        ("q_0", BadTransform, "q_0"),
        ("v_0", BadTransform, "v_0"),
        ("v_two", BadTransform, "v_two"),
        ("v_1000000001", BadTransform, "out of range 1..1000000000"),  # said: an integer
        ("q_99999999999999999999", BadTransform, "out of range 1..100"),
        ("v_2/v_3", BadTransform, "v_3"),
        ("q_101", BadTransform, "q_101"),
        ("q_high", BadTransform, "q_high"),
        ("q_80/q_70", BadTransform, "q_70"),
        ("f_bmp", BadTransform, "f_bmp"),
        ("f_webp/f_png", BadTransform, "f_png"),
        ("t_nope", BadTransform, "t_nope"),
        ("t_bad%20name", BadTransform, "t_bad%20name"),
        ("t_loop", BadTransform, "t_loop"),
        ("w_10,t_two", BadTransform, "t_two"),
        ("t_thumb,w_5", BadTransform, "w_5"),
        ("l_abc", BadTransform, "l_abc"),
        ("l_text:", BadTransform, "l_text:"),
        ("l_text:%20", BadTransform, "l_text:%20"),  # nothing to draw (it was a 422)
        ("l_text:%20%E3%80%80%20,fs_20", BadTransform, "l_text:%20%E3%80%80%20"),
        ("l_text:%FF", BadTransform, "l_text:%FF"),
        ("l_text:a%0Ab", BadTransform, "l_text:a%0Ab"),
        ("l_text:" + "a" * 201, LimitExceeded, "l_text:aaa"),
        ("l_text:" + "%C3%A9" * 201, LimitExceeded, "l_text:%C3"),
        ("l_text:hi,h_10", BadTransform, "h_10"),
        ("l_text:hi,c_fill", BadTransform, "c_fill"),
        ("l_text:hi,g_auto", BadTransform, "g_auto"),
        ("l_text:hi,o_101", BadTransform, "o_101"),
        ("l_text:hi,fs_2", BadTransform, "fs_2"),
        ("l_text:hi,co_blue", BadTransform, "co_blue"),
        (f"l_{OTHER_ID},co_ff0000", BadTransform, "co_ff0000"),
        (f"l_{OTHER_ID},fs_20", BadTransform, "fs_20"),
        ("o_50", BadTransform, "o_50"),
        ("co_ffffff", BadTransform, "co_ffffff"),
        ("fs_20", BadTransform, "fs_20"),
        ("w_1//e_sepia", BadTransform, "empty stage"),
        ("/".join(["e_sepia"] * 9), LimitExceeded, "8 stages"),
        ("t_two/" + "/".join(["e_sepia"] * 7), LimitExceeded, "8 stages"),
        (
            ",".join(f"e_{e}" for e in ("grayscale", "sepia", "blur", "sharpen", "pixelate"))
            + ","
            + ",".join(["w_1"] * 12),
            LimitExceeded,
            "16 tokens",
        ),
    ],
)
def test_errors(chain: str, error: type[OriginError], named: str) -> None:
    presets = {"thumb": "w_300,h_200,c_fill", "two": "w_100/e_sepia", "loop": "t_thumb"}
    with pytest.raises(error) as info:
        parse_path(url(chain), presets=presets)
    assert type(info.value) is error
    assert named in info.value.message


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/i/",
        f"/i/{ID}",
        f"/i/{ID}/",
        f"/x/{ID}/a.jpg",
        f"/i/{ID.upper()}/a.jpg",
        f"/i/{ID}0/a.jpg",
        "/i/xyz/a.jpg",
        f"/i/{ID}/a",
        f"/i/{ID}/.jpg",
        f"/i/{ID}/a.bmp",
        f"/i/{ID}/w_1/a.tiff",
        f"/i/{ID}//a.jpg",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(BadTransform):
        parse_path(path)


def test_bad_image_id_message() -> None:
    with pytest.raises(BadTransform, match="bad image id"):
        parse_path("/i/NOTANID/a.jpg")


def test_limits_are_configurable() -> None:
    small = Limits(
        max_output_dimension=100, max_stages=2, max_tokens_per_stage=2, max_text_length=3
    )
    with pytest.raises(LimitExceeded, match="w_101"):
        parse_path(url("w_101"), limits=small)
    with pytest.raises(LimitExceeded):
        parse_path(url("e_sepia/e_sepia/e_sepia"), limits=small)
    with pytest.raises(LimitExceeded):
        parse_path(url("w_1,h_1,c_fill"), limits=small)
    with pytest.raises(LimitExceeded):
        parse_path(url("l_text:abcd"), limits=small)
    assert parse_path(url("l_text:abc"), limits=small).stages


def test_every_token_has_a_parser_and_an_error_row() -> None:
    assert set(TOKENS) == {
        "w",
        "h",
        "c",
        "g",
        "x",
        "y",
        "ar",
        "dpr",
        "r",
        "fl",
        "e",
        "b",
        "q",
        "f",
        "v",
        "t",
        "l",
        "o",
        "co",
        "fs",
        "flags",  # written fl_<flag>: the fl_ token files flags under it
    }


# ---------------------------------------------------------------- properties

_token_keys = st.sampled_from([*sorted(TOKENS), "zz", "", "W", "e"])
_values = st.one_of(
    st.text(alphabet="0123456789.:-_%abcdefghlnoprstuvwxyzACF", max_size=12),
    st.sampled_from(
        [
            "300",
            "0.5",
            "fill",
            "auto",
            "north_east",
            "blur:50",
            "text:hi%2C",
            "ff0000",
            OTHER_ID,
            "3:2",
            "1.5",
            "360",
            "hv",
            "webp",
        ]
    ),
)
_tokens = st.builds(lambda k, v: f"{k}_{v}", _token_keys, _values)
_stages = st.lists(st.lists(_tokens, min_size=1, max_size=5).map(",".join), max_size=4)


@settings(max_examples=200, deadline=None)
@given(
    _stages,
    st.sampled_from(["x.jpg", "x.webp", "x.json", "x.png", "x"]),
    st.one_of(st.none(), st.text(max_size=30)),
)
def test_random_tokens_raise_only_origin_errors(
    stages: list[str], name: str, accept: str | None
) -> None:
    path = "/".join([f"/i/{ID}", *stages, name])
    try:
        plan = parse_path(path, accept=accept, presets={"p": "w_10"})
    except OriginError as exc:
        assert type(exc) in (BadTransform, LimitExceeded)
        return
    # a plan parses back to the same canonical form from a reordered token list
    assert plan.canonical() == parse_path(path, accept=accept, presets={"p": "w_10"}).canonical()


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=80),
        st.binary(max_size=80).map(lambda b: f"/i/{ID}/" + b.decode("latin-1")),
    )
)
def test_random_paths_raise_only_origin_errors(path: str) -> None:
    try:
        parse_path(path)
    except OriginError as exc:
        assert type(exc) in (BadTransform, LimitExceeded)


@settings(max_examples=100, deadline=None)
@given(st.permutations(["w_300", "h_200", "c_fill", "g_north", "e_sepia", "fl_h", "r_90"]))
def test_token_order_inside_a_stage_does_not_matter(tokens: list[str]) -> None:
    assert canon(",".join(tokens)) == canon("w_300,h_200,c_fill,g_north,r_90,fl_h,e_sepia")
