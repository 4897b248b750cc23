"""edgeag: face age and gender estimation for edge devices.

    from edgeag import FaceAnalyzer
    for face in FaceAnalyzer().analyze("group.jpg"):
        print(face.to_dict())

Heavy modules (LiteRT, MediaPipe) load on first use, so ``import edgeag`` stays fast.
"""

from __future__ import annotations

from edgeag._version import __version__

__all__ = ["FaceAnalyzer", "FaceAnalyzerOptions", "Face", "__version__"]


def __getattr__(name: str):
    if name in ("FaceAnalyzer", "FaceAnalyzerOptions"):
        from edgeag.edge import analyzer

        return getattr(analyzer, name)
    if name == "Face":
        from edgeag.edge.face import Face

        return Face
    raise AttributeError(f"module 'edgeag' has no attribute {name!r}")
