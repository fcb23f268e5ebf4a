"""A CJK TrueType font for anything that draws Chinese text: reports, shipping labels.

The font comes from a Debian package that `make system-deps` installs (see
`DEB_PACKAGES` in the Makefile); nothing is downloaded at run time, because the
machines that print labels and reports have no internet. Only fonts with TrueType
(`glyf`) outlines are candidates: reportlab embeds those and refuses the CFF
outlines of Noto CJK / Source Han, and Pillow draws either.

`WAYBILLGUARD_CJK_FONT` names another file (`.ttf`, or `.ttc` with `#N` for the
face inside the collection) where the Debian fonts are not an option.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

FONT_ENV: Final = "WAYBILLGUARD_CJK_FONT"
REPORTLAB_FONT_NAME: Final = "WaybillguardCJK"
DEBIAN_PACKAGE: Final = "fonts-wqy-zenhei"


@dataclass(frozen=True, slots=True)
class CjkFont:
    """A font file and the face to use inside it (0 for a plain `.ttf`)."""

    path: Path
    subfont_index: int = 0
    package: str = ""


# In order of preference; the first one installed wins.
CANDIDATES: Final = (
    CjkFont(Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"), 0, "fonts-wqy-zenhei"),
    CjkFont(Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"), 0, "fonts-wqy-microhei"),
    CjkFont(Path("/usr/share/fonts/truetype/arphic/uming.ttc"), 0, "fonts-arphic-uming"),
    CjkFont(
        Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"), 0, "fonts-droid-fallback"
    ),
)


class FontNotFound(RuntimeError):
    """No usable CJK TrueType font on this machine; the message says what to install."""


def _from_env(value: str) -> CjkFont:
    path_text, _, index_text = value.partition("#")
    try:
        index = int(index_text) if index_text else 0
    except ValueError:
        raise FontNotFound(f"{FONT_ENV}: the face after '#' must be a number") from None
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise FontNotFound(f"{FONT_ENV}: {path} is not a file")
    return CjkFont(path, index)


def cjk_font() -> CjkFont:
    """The CJK font to use: `WAYBILLGUARD_CJK_FONT` if set, else the first installed
    candidate. Raises FontNotFound naming the Debian package to install."""
    override = os.environ.get(FONT_ENV)
    if override:
        return _from_env(override)
    for candidate in CANDIDATES:
        if candidate.path.is_file():
            return candidate
    raise FontNotFound(
        "no CJK TrueType font found (looked for "
        + ", ".join(str(c.path) for c in CANDIDATES)
        + f"); install the Debian package {DEBIAN_PACKAGE} "
        f"(`apt-get install {DEBIAN_PACKAGE}` or `make system-deps`), "
        f"or set {FONT_ENV} to a TrueType .ttf/.ttc file"
    )


def cjk_font_path() -> Path:
    """Path of the CJK font file (for a `.ttc`, see `cjk_font().subfont_index`)."""
    return cjk_font().path


@lru_cache(maxsize=1)
def _register(font: CjkFont) -> str:
    # Imported here: reportlab is only needed by the code paths that make PDFs.
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFError, TTFont

    try:
        ttf = TTFont(REPORTLAB_FONT_NAME, str(font.path), subfontIndex=font.subfont_index)
    except (TTFError, OSError) as exc:
        raise FontNotFound(
            f"{font.path} cannot be embedded in a PDF ({exc}); it needs TrueType outlines: "
            f"install {DEBIAN_PACKAGE} or point {FONT_ENV} at another font"
        ) from None
    pdfmetrics.registerFont(ttf)
    return REPORTLAB_FONT_NAME


def register_reportlab_cjk_font() -> str:
    """Register the CJK font with reportlab (once per process) and return its name.

    reportlab embeds a subset of it (/FontFile2) in every PDF that uses the name, so
    any viewer shows the Chinese text without fonts of its own."""
    return _register(cjk_font())
