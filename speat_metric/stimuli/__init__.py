"""SpEAT stimuli: the study's selections (``selections``; every published test: ``battery``), typed loaders
(``loaders``: a `StimulusSet` of `Stimulus` records), where the audio comes from (``sources``, ``public``,
``download``, ``corpora``) and custom tests (``custom``, ``builder``).
"""

from speat_metric.stimuli.battery import get_speat_test, published_tests
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
    "published_tests", "resolve_source", "speat_tests", "stimulus_provenance", "stimulus_refs",
]
