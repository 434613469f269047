"""SpEAT stimuli: the study's selections, typed loaders (exportable as ``datasets.Dataset``), downloads, and where the
audio comes from.

- ``selections``: the packaged selections and the named tests ``gender``, ``age``, ``native`` (`SpeatTestSpec`).
- ``download``: HTTP downloads with retries, resume, atomic files and a manifest.
- ``public``: the public locations (accent.gmu.edu, Zenodo) fetched into the stimulus cache.
- ``sources``: the demo set, local directories, the public download and Hub datasets; `resolve_source`.
- ``loaders``: `load_speat_test`, `load_accent_archive`, `load_morgan`: a `StimulusSet` of `Stimulus` records.
- ``custom``: custom tests from a JSON file (`load_custom_test`).
"""

from speat_metric.stimuli.custom import load_custom_test
from speat_metric.stimuli.download import RetryPolicy
from speat_metric.stimuli.errors import DownloadError, MissingStimuliError, StimulusError
from speat_metric.stimuli.loaders import (
    STIMULUS_FEATURES,
    Stimulus,
    StimulusProvenance,
    StimulusSet,
    load_accent_archive,
    load_morgan,
    load_speat_test,
    stimulus_provenance,
    stimulus_refs,
)
from speat_metric.stimuli.public import default_cache_dir
from speat_metric.stimuli.selections import (
    TEST_NAMES,
    SpeatTestSpec,
    StimulusGroup,
    demo_available,
    demo_speat_test,
    get_speat_test,
    speat_tests,
)
from speat_metric.stimuli.sources import (
    DemoSource,
    DownloadSource,
    HubSource,
    LocalDirectorySource,
    StimulusSource,
    resolve_source,
)

__all__ = [
    "STIMULUS_FEATURES", "TEST_NAMES", "DemoSource", "DownloadError", "DownloadSource", "HubSource",
    "LocalDirectorySource", "MissingStimuliError", "RetryPolicy", "SpeatTestSpec", "Stimulus", "StimulusError",
    "StimulusGroup", "StimulusProvenance", "StimulusSet", "StimulusSource", "default_cache_dir", "demo_available",
    "demo_speat_test", "get_speat_test", "load_accent_archive", "load_custom_test", "load_morgan", "load_speat_test",
    "resolve_source", "speat_tests", "stimulus_provenance", "stimulus_refs",
]
