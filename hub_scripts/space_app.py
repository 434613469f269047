"""The app of the SpEAT evaluate-module Space: ``speat hub publish-module`` pushes this file as the Space's ``app.py``.

evaluate's own ``launch_gradio_widget`` is broken on gradio 6, so the Space runs this instead: upload labelled
embeddings (CSV with a ``group`` column of X, Y, A or B and one column per dimension, or an NPZ with arrays X, Y,
A and B), get the measurement's result. The measurement is the module file beside this one (`MODULE_FILE`), the
very file ``evaluate.load("ORG/NAME")`` downloads.

Run it locally with ``python app.py`` in the Space's folder, once its ``requirements.txt`` is installed.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

MODULE_FILE = "speat.py"
"""The measurement's file beside this app (``speat hub publish-module`` sets it to ``<space name>.py``)."""


@cache
def measurement() -> Any:
    """The evaluate measurement of this Space, loaded from its own file."""
    import evaluate

    return evaluate.load(str(Path(__file__).with_name(MODULE_FILE)))


def compute(path: str, num_permutations: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """The SpEAT result of an uploaded embeddings file (formats: `speat_metric.space.uploads.read_embeddings`).

    Raises:
        ValueError: a file that cannot be read as labelled embeddings (the message says what to fix).
    """
    from speat_metric.space.uploads import read_embeddings

    upload = read_embeddings(path)
    return measurement().compute(embeddings=upload.embeddings.tolist(), groups=list(upload.groups),
                                 num_permutations=int(num_permutations), seed=int(seed))


def build_demo() -> Any:
    """The Gradio interface."""
    import gradio as gr

    def run(file: str | None, num_permutations: float, seed: float) -> dict[str, Any]:
        if not file:
            raise gr.Error("upload a CSV or NPZ file of embeddings first")
        try:
            return compute(file, int(num_permutations), int(seed))
        except ValueError as error:
            raise gr.Error(str(error)) from None

    return gr.Interface(
        fn=run,
        inputs=[gr.File(label="embeddings (.csv or .npz)", file_types=[".csv", ".npz"], type="filepath"),
                gr.Number(value=100_000, precision=0, minimum=1, label="permutations"),
                gr.Number(value=0, precision=0, minimum=0, label="seed")],
        outputs=gr.JSON(label="SpEAT result"),
        title="SpEAT: Speech Embedding Association Test",
        description=(measurement().description or "").strip(),
        flagging_mode="never",
    )


if __name__ == "__main__":
    build_demo().launch()
