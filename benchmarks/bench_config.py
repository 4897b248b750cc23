"""What ``edgeag benchmark`` measures: its configuration, its stages and the issue's targets."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SCHEMA_VERSION = 1

STAGES: dict[str, str] = {
    "decode": "JPEG frame -> BGR (cv2.imdecode) -> RGB, in a runtime FrameSource",
    "detect": "face detection on the full frame (BlazeFace, MediaPipe VIDEO mode)",
    "crop": "crop_face for the frame's faces (align, margin, resize) + stack",
    "classify_face": "classifier on one face (batch 1; per face; all models interleaved)",
    "classify_batch": "classifier on the frame's faces in one call (set input, invoke, read heads)",
    "track": "tracker (motion, gaps) + per-track smoothing (FaceAnalyzer.track)",
    "output": "Face records, JSON record, JSON Lines write and loop glue (the rest of the frame period)",
    "draw": "overlay of boxes and captions on the frame (edgeag.edge.sinks.annotate)",
    "end_to_end": "one frame of the run loop, headless: decode .. output (period minus draw)",
    "end_to_end_drawn": "one frame of the run loop with the overlay drawn (window or video output, before display/encode)",
}

# The targets for this project (x86, 1 thread). Reported, never asserted by tests.
TARGETS = {
    "classify_face_int8_ms": 0.5,
    "int8_speedup_vs_float32": 1.5,
    "detect_ms": 3.0,
    "end_to_end_fps": 100.0,
    "non_model_share": 0.35,
}


@dataclass
class BenchConfig:
    """What to benchmark. Empty ``models`` means the bundled classifier."""

    models: list[Path] = field(default_factory=list)
    threads: list[int] = field(default_factory=lambda: [1])
    frames: int = 200
    warmup: int = 20
    faces: int = 3
    width: int = 640
    height: int = 480
    jpeg_quality: int = 90
    data: Path | None = None
    split_file: Path | None = None
    split: str = "test"
    detector: str | None = None  # --detector: auto | full | short; None = the default
    accuracy: bool = True  # with data: evaluate each model on the split
    seed: int = 0
