"""Read the ``file`` field of a multipart upload as a stream, cut off past a byte limit.

The body is fed chunk by chunk to python-multipart's push parser; the file's bytes are kept
in memory only up to ``max_bytes`` (the first byte past it stops reading with 413), and other
fields (``eager``, ``notification_url``) are kept as text up to a small bound. Nothing is spooled to disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from origin.errors import BadRequest, PayloadTooLarge, shown

MAX_OTHER_FIELD_BYTES = 64 * 1024
ENVELOPE_BYTES = 64 * 1024  # room for boundaries and part headers around the file
MAX_PART_HEADER_BYTES = 32 * 1024  # a 5000-character filename still fits
MAX_BOUNDARY = 256  # python-multipart's limit (RFC 2046 asks for at most 70)


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes
    # The other (non-file) fields, UTF-8 text, the first of each name (``eager``, …).
    fields: dict[str, str] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class _FileCollector:
    """Callbacks for the push parser: collects the first part named ``file``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.in_file = False
        self.file: bytearray | None = None
        self.filename = ""
        self.content_type = ""
        self.other_bytes = 0
        self.part_name = ""  # of the part being read
        self.part_is_file = False  # it has a filename
        self.misnamed: str | None = None  # the name of the first file sent under another name
        self.done = False
        self.fields: dict[str, bytearray] = {}
        self.collecting: bytearray | None = None  # the text field being read

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"")
        self.part_name = shown(name)
        self.part_is_file = b"filename" in options
        if self.part_is_file and name != b"file" and self.misnamed is None:
            self.misnamed = self.part_name
        self.in_file = name == b"file" and self.file is None and self.part_is_file
        self.collecting = None
        if not self.part_is_file and self.part_name not in self.fields:
            self.collecting = self.fields[self.part_name] = bytearray()
        if self.in_file:
            self.file = bytearray()
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.content_type = self.headers.get(b"content-type", b"").decode("latin-1")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file and self.file is not None:
            if len(self.file) + (end - start) > self.max_bytes:
                raise _TooLarge
            self.file += data[start:end]
        else:
            self.other_bytes += end - start
            if self.other_bytes > MAX_OTHER_FIELD_BYTES:
                raise self.too_much_else()
            if self.collecting is not None:
                self.collecting += data[start:end]

    def too_much_else(self) -> BadRequest:
        """Past the bound for other fields: most likely the file, under a wrong name."""
        if self.file is None and self.part_is_file:
            return self.missing()
        if self.file is None and self.part_name == "file":
            return BadRequest("the 'file' field must be a file part (with a filename)")
        return BadRequest("form fields other than 'file' are too large")

    def missing(self) -> BadRequest:
        if self.misnamed is not None:
            return BadRequest(
                f"the multipart body has no 'file' field (a file came as '{self.misnamed}'): "
                "send the image in the field named 'file'"
            )
        return BadRequest("the multipart body has no 'file' field")

    def on_part_end(self) -> None:
        self.in_file = False

    def on_end(self) -> None:
        self.done = True


async def read_file_field(
    content_type: str, body: AsyncIterator[bytes], *, max_bytes: int
) -> UploadedFile:
    """The ``file`` field's name, declared type and bytes; 400/413 on a bad body."""
    media_type, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise BadRequest("expected a multipart/form-data body with a 'file' field")
    if len(boundary) > MAX_BOUNDARY:  # the parser's own bound, raised as its own error type
        raise BadRequest(f"the multipart boundary is longer than {MAX_BOUNDARY} characters")
    collector = _FileCollector(max_bytes)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_end": collector.on_end,
        },
        max_header_size=MAX_PART_HEADER_BYTES,
    )
    try:
        async for chunk in body:
            parser.write(chunk)
        parser.finalize()
    except _TooLarge:
        raise PayloadTooLarge(
            f"the file is larger than the {max_bytes}-byte upload limit"
        ) from None
    except MultipartParseError:
        raise BadRequest("the multipart body is malformed") from None
    if collector.file is None:
        raise collector.missing()
    if not collector.done:
        raise BadRequest("the multipart body is incomplete")
    try:
        fields = {name: bytes(value).decode("utf-8") for name, value in collector.fields.items()}
    except UnicodeDecodeError:
        raise BadRequest("form fields must be UTF-8 text") from None
    if any("\x00" in value for value in fields.values()):
        raise BadRequest("text must not hold a NUL character")
    return UploadedFile(collector.filename, collector.content_type, bytes(collector.file), fields)
