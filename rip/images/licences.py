"""What an image's source says about its licence, in the source's own words where it has any."""

import inspect
import re

from rip import artefacts

NOT_STATED = "not stated by its source"
_LICENCE_WORDS = re.compile(r"copyright|public domain|licen[cs]e|\bCC0\b|\bCC[- ]BY", re.IGNORECASE)
_RULE = re.compile(r"^\s*-{3,}\s*$")  # under a numpydoc section header
_LINK = re.compile(r"`([^`]*)`_*")  # reStructuredText link


def image_licence(origin: str, kind: str = "", location: str = "", revision: str = "") -> str:
    """The licence of an image, as its source states it.

    `origin` is the image run's `rip.image_origin` (`skimage:NAME`, `matplotlib:FILE` or a file);
    `kind`, `location` and `revision` describe the collection it was drawn from (`hub`, `parquet`,
    `folder` or `sample`; see `rip.images.source.Collection`), as the configuration run records it.
    """
    source, _, name = origin.partition(":")
    if source == "skimage":
        return _scikit_image_notes(name)
    if source == "matplotlib":
        return f"{NOT_STATED} (matplotlib ships {name} as sample data)"
    if kind == "hub" and location == artefacts.WIKIART.id:
        return f"{artefacts.WIKIART.licence} ({location} at {revision or 'its default branch'})"
    if kind == "hub":
        return f"as the dataset card of {location} states (revision {revision or 'default branch'}); not recorded"
    if kind in ("folder", "parquet"):
        return f"{NOT_STATED}: a local {kind} ({location}); its owner's terms apply"
    return NOT_STATED


def _scikit_image_notes(name: str) -> str:
    """The sentences of scikit-image's docstring of `skimage.data.NAME` that speak of copyright or licence."""
    import skimage.data

    function = getattr(skimage.data, name, None)
    text = inspect.getdoc(function) if function is not None else ""
    stated = [paragraph for paragraph in _paragraphs(text or "") if _LICENCE_WORDS.search(paragraph)]
    where = f"scikit-image, skimage.data.{name}"
    return f"{' '.join(stated)} ({where})" if stated else f"{NOT_STATED} ({where})"


def _paragraphs(docstring: str) -> list[str]:
    """A numpydoc docstring's prose paragraphs, on one line each: no section headers, no directives
    (`.. versionchanged::`, references), links as `text <address>`."""
    lines = docstring.splitlines()
    kept = [line for index, line in enumerate(lines)
            if not _RULE.match(line) and not (index + 1 < len(lines) and _RULE.match(lines[index + 1]))]
    paragraphs = [" ".join(paragraph.split()) for paragraph in "\n".join(kept).split("\n\n")]
    return [_LINK.sub(r"\1", paragraph) for paragraph in paragraphs if paragraph and not paragraph.startswith("..")]
