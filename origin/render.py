"""Render a Plan: load (with shrink-on-load), run every stage's steps, encode.

Synchronous libvips only; the caller runs it in a worker thread. Whatever the input bytes and
plan, only OriginError subclasses escape: libvips errors become InvalidImage with a short
public message (the libvips text is logged, never sent).

The sequence, as ``_render`` runs it:

1. the header (origin.decode) and the work budget (``check_budget``: MAX_FRAMES,
   MAX_OUTPUT_PIXELS, the effect budget), before any pixel is decoded;
2. ``load`` — the LOAD phase, an immutable ``Loaded``: every frame of an animation written
   as GIF/WebP; else, when the first stage scales, the source decoded at reduced scale
   straight to the size that stage asks (shrink-on-load, from a working copy when one
   stands in), with the size it was planned from; else, when the first stage cuts a fixed
   region of a still JPEG/PNG, that region decoded sequentially (the rows below it never
   are); else the whole upright source;
3. each stage's steps in the registry's order (origin.transforms.registry), each given its
   value and the stage's immutable ``StageContext``; a render under a deadline
   (origin.deadline) checks it between steps, and libvips stops inside a step;
4. the encoder (origin.encode).

Colour: an embedded ICC profile is converted to sRGB and the derivative keeps only that sRGB
profile. Animated GIF/WebP stay animated when the output is GIF or WebP; any other output
takes the first frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import pyvips

from origin import deadline, frames_copy, quality, vips
from origin.analysis import source_summary
from origin.decode import Header, load_frames, read_header
from origin.encode import ENCODERS, encode, shown_in
from origin.errors import LimitExceeded
from origin.faces import Faces
from origin.palette import palette
from origin.pixels import scale_to, to_srgb, watched
from origin.rights import rights_of
from origin.transforms.budget import output_size
from origin.transforms.declarations import Frames, Phase, StageContext
from origin.transforms.effects import ON_FACES
from origin.transforms.formats import ANIMATED_FORMATS, MEDIA_TYPES
from origin.transforms.geometry import Resize, plan_geometry
from origin.transforms.limits import DEFAULT_LIMITS, Limits
from origin.transforms.padding import colour_of, fill_of
from origin.transforms.plan import Plan, Stage

NO_OVERLAYS: Mapping[str, bytes] = MappingProxyType({})


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    width: int
    height: int
    format: str
    choice: quality.Choice | None = None  # how `q_auto` was resolved, when it was


@dataclass(frozen=True)
class StandIn:
    """The source bytes are a working copy (origin.working_copies) of an original of this
    upright size and format: the first stage is planned on the original, then scaled from
    the copy."""

    width: int
    height: int
    format: str

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(frozen=True)
class Loaded:
    """What the LOAD phase gives the first stage: the frames, the animation's delay/loop,
    and — when it already scaled — the size the first stage's geometry is planned from, or
    whether it already cut the first stage's fixed crop (``cut``)."""

    frames: Frames
    meta: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    planned_from: tuple[int, int] | None = None
    cut: bool = False


def first_resize(plan: Plan) -> Resize | None:
    """The first stage's resize when it scales the source (shrink-on-load applies)."""
    if not plan.stages:
        return None
    resize = plan.stages[0].value("resize")
    return resize if isinstance(resize, Resize) and resize.scales else None


def output_frames(header: Header, fmt: str) -> int:
    """Frames of the output: an animated GIF/WebP's when the output is GIF or WebP, else 1."""
    animated = header.format in ANIMATED_FORMATS and fmt in ANIMATED_FORMATS
    return header.pages if animated else 1


def check_budget(
    header: Header, fmt: str, plan: Plan, limits: Limits, stand_in: StandIn | None
) -> None:
    """The work budget from the header alone, before any pixel is decoded: MAX_FRAMES for an
    animated output, then the chain's pixels and effects (origin.transforms.budget) on the
    original's upright size, counting every frame of the output."""
    frames = output_frames(header, fmt)
    if frames > limits.max_frames:
        raise LimitExceeded(
            f"the source has {frames} frames, above MAX_FRAMES {limits.max_frames} for an "
            "animated output"
        )
    size = (header.width, header.height) if stand_in is None else stand_in.size
    output_size(*size, plan.stages, limits, frames)


def load(
    source: bytes, header: Header, plan: Plan, fmt: str, limits: Limits, stand_in: StandIn | None
) -> Loaded:
    """The LOAD phase (see the module's docstring)."""
    keep = "keep_icc" in plan.flags and ENCODERS[fmt].icc  # a GIF's pixels must be sRGB
    if output_frames(header, fmt) > 1:
        frames, meta = frames_copy.load(source) if header.copied else load_frames(source, header)
        return Loaded(frames, MappingProxyType(meta))
    if header.copied:
        raise ValueError("a frames copy stands in only for an animated output")
    first = first_resize(plan)
    if stand_in is not None and first is None:
        raise ValueError("a working copy stands in only for a chain whose first stage scales")
    if first is not None:
        # Shrink-on-load: plan the first stage's geometry on the original's size, then let
        # libvips decode at reduced scale straight to the scaled size.
        size = (header.width, header.height) if stand_in is None else stand_in.size
        geometry = plan_geometry(*size, first, limits, plan.stages[0].canonical())
        if stand_in is not None or geometry.scaled != size:
            width, height = geometry.scaled
            img = _scaled_load(source, header, width, height, stand_in is not None)
            # thumbnail reads sequentially; later steps (smartcrop, rotate, flip) need random
            # access, and the scaled image is small: keep it in memory.
            img = to_srgb(img, keep).copy_memory()
            if (img.width, img.height) != geometry.scaled:  # rounding inside libvips
                img = scale_to(img, geometry.scaled)
            return Loaded((img,), planned_from=size)
    cut = fixed_cut(header, plan, limits)
    if cut is not None:
        # A crop of a still JPEG/PNG decoded top to bottom stops at the cut's last row
        # (W3: 700 of 1080 rows, 10 ms of 28), and only the cut is held.
        img = vips.load(source, header.format, access="sequential").extract_area(*cut)
        return Loaded((to_srgb(img, keep).copy_memory(),), cut=True)
    return Loaded((to_srgb(vips.load(source, header.format).autorot(), keep),))


def fixed_cut(header: Header, plan: Plan, limits: Limits) -> tuple[int, int, int, int] | None:
    """The first stage's cut (left, top, width, height) when it cuts an upright still JPEG
    or PNG at a place known before decoding (``c_crop``, ``c_fill`` without scaling and
    without ``g_auto``/``g_entropy``), else None. Not when the stage has a face effect: that
    runs first, on the whole image (where the stored boxes hold, and where a face the cut
    halves can still be found)."""
    if header.format not in SEQUENTIAL_CUT_FORMATS or header.orientation > 1 or not plan.stages:
        return None
    if any(step.transform.name in ON_FACES for step in plan.stages[0]):
        return None
    resize = plan.stages[0].value("resize")
    if not isinstance(resize, Resize):
        return None
    size = (header.width, header.height)
    g = plan_geometry(*size, resize, limits, plan.stages[0].canonical())
    if g.scaled != size or g.cut is None or g.smart is not None or g.canvas is not None:
        return None
    return g.cut


SEQUENTIAL_CUT_FORMATS = frozenset({"jpeg", "png"})


# A JPEG working copy is decoded by libjpeg at 1/2, 1/4 or 1/8 scale while at least this
# much reduction is left for lanczos3, as libvips' thumbnail does (imgproxy and sharp's
# fastShrinkOnLoad leave 1). A margin of 1.5 cost up to 0.008 SSIM (1000×750 to 160×120
# through 1/4 scale): docs/performance.md, "Working copies".
LEVEL_REDUCE_MARGIN = 2.0


def _scaled_load(
    source: bytes, header: Header, width: int, height: int, level: bool
) -> pyvips.Image:
    """``source`` decoded at reduced scale where its format allows, resized to exactly
    ``width``×``height``. A working copy (``level``) is upright, sRGB, opaque when JPEG, and
    already chosen at least 1.5 times the size asked (origin.working_copies), so libjpeg's
    scaled decode (an IDCT of the low frequencies at 1/2 and 1/4; at 1/8 the block average
    that libvips' thumbnail also uses past 16×) may take more of the reduction than
    thumbnail would: docs/performance.md has the figures."""
    if not level or header.format != "jpeg":
        return vips.thumbnail(source, header.format, width, height=height, size="force")
    factor = min(header.width / width, header.height / height)
    shrink = 1
    while shrink < 8 and shrink * 2 * LEVEL_REDUCE_MARGIN <= factor:
        shrink *= 2
    img = vips.load(source, "jpeg", shrink=shrink, access="sequential")
    return img.resize(width / img.width, vscale=height / img.height, kernel="lanczos3")


def run_stage(frames: Frames, stage: Stage, ctx: StageContext, later_stages: bool) -> Frames:
    """One stage's steps in order. A ``held`` step's output is computed once into memory
    when another effect of the stage or a later stage reads it."""
    steps = stage.steps
    for index, step in enumerate(steps):
        transform = step.transform
        if transform.apply is None:  # b_: read through the context
            continue
        deadline.check()
        frames = transform.apply(frames, step.value, ctx)
        if transform.held and (
            later_stages or any(s.transform.phase is Phase.EFFECT for s in steps[index + 1 :])
        ):
            frames = tuple(f.copy_memory() for f in frames)
        deadline.watch(watched(frames))
    return frames


def check_size(img: pyvips.Image, limits: Limits) -> None:
    if max(img.width, img.height) > limits.max_output_dimension:
        raise LimitExceeded(
            f"the output would be {img.width}x{img.height}, above the maximum dimension "
            f"{limits.max_output_dimension}"
        )


def _render(
    source: bytes,
    plan: Plan,
    overlays: Mapping[str, bytes],
    limits: Limits,
    stand_in: StandIn | None,
    focal: tuple[float, float] | None,
    faces: Faces | None,
    auto: quality.AutoQuality,
) -> Rendered:
    if stand_in is not None and frames_copy.is_copy(source):
        header = frames_copy.header(source, limits.max_source_pixels)
    else:
        header = read_header(source, limits.max_source_pixels)
    fmt = plan.format or (header.format if stand_in is None else stand_in.format)
    check_budget(header, fmt, plan, limits, stand_in)
    loaded = load(source, header, plan, fmt, limits, stand_in)
    frames = loaded.frames
    deadline.watch(watched(frames))
    icc = bool(frames[0].get_typeof("icc-profile-data"))
    rights = rights_of(frames[0]) if "keep_copyright" in plan.flags else None
    as_is = "smaller" in plan.flags and stand_in is None and answers_as_is(frames[0], plan)
    last = len(plan.stages) - 1
    for index, stage in enumerate(plan.stages):
        ctx = StageContext(
            limits,
            background=shown_in(fmt, colour_of(stage.value("background"))),
            fill=fill_of(stage.value("background")),
            overlays=overlays,
            planned_from=loaded.planned_from if index == 0 else None,
            cut_at_load=loaded.cut and index == 0,
            focal=focal if index == 0 else None,
            faces=faces if index == 0 and not loaded.cut else None,
        )
        frames = run_stage(frames, stage, ctx, later_stages=index < last)
    check_size(frames[0], limits)
    deadline.check()
    body, choice = encode(frames, loaded.meta, fmt, plan, icc, auto, rights)
    width, height = frames[0].width, frames[0].height
    same = (fmt, width, height) == (header.format, header.width, header.height)
    if as_is and same and len(body) > len(source):
        return Rendered(source, MEDIA_TYPES[fmt], width, height, fmt)  # fl_smaller
    return Rendered(body, MEDIA_TYPES[fmt], width, height, fmt, choice)


def answers_as_is(first: pyvips.Image, plan: Plan) -> bool:
    """``fl_smaller`` may answer the original's bytes: every step of the plan is a resize
    (one that leaves the size as it is shows nothing changed; the caller compares sizes),
    and the source carries no EXIF, XMP or IPTC a derivative would strip."""
    only_resizes = all(step.transform.name == "resize" for stage in plan.stages for step in stage)
    metadata = any(first.get_typeof(f) for f in ("exif-data", "xmp-data", "iptc-data"))
    return only_resizes and not metadata


def render(
    source: bytes,
    plan: Plan,
    *,
    overlays: Mapping[str, bytes] | None = None,
    limits: Limits = DEFAULT_LIMITS,
    stand_in: StandIn | None = None,
    focal: tuple[float, float] | None = None,
    faces: Faces | None = None,
    auto: quality.AutoQuality = quality.SEARCH,
) -> Rendered:
    """The derivative ``plan`` describes, encoded. Raises only OriginError subclasses.
    With ``stand_in``, ``source`` is a working copy of that original (origin.working_copies).
    With ``focal`` (the source's stored attention point, as fractions), a first-stage
    ``g_auto`` cut is centred on it instead of running libvips attention; with ``faces``
    (its stored faces, origin.faces), ``g_face`` and the face effects of the first stage do
    not look for them again.
    ``auto`` resolves ``q_auto`` (origin.quality): a quality chosen before, else a search."""
    found = MappingProxyType(dict(overlays)) if overlays else NO_OVERLAYS
    return vips.guarded(lambda: _render(source, plan, found, limits, stand_in, focal, faces, auto))


def facts(
    rendered: Rendered,
    source: bytes,
    *,
    limits: Limits = DEFAULT_LIMITS,
    summary: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """The ``.json`` answer for a derivative rendered from ``source``: its size, format and
    byte count (in the plan's format, else the source's), its palette (origin.palette), plus
    the source's blurhash and dominant colour (``summary`` when stored at upload, else
    computed now)."""
    return {
        "width": rendered.width,
        "height": rendered.height,
        "format": rendered.format,
        "bytes": len(rendered.body),
        **(summary if summary is not None else source_summary(source, limits=limits)),
        "palette": palette(rendered.body, rendered.format),
    }
