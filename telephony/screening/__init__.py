"""Prank and silent call screening: features, a configurable score with reasons, and effects
that delay but never block, measured on a synthetic corpus against today's blocking rules.

The domain here is pure; the IVR and the database supply the features and apply the decision.
"""

from telephony.screening.features import (
    FIRST_TIME,
    CallerHistory,
    CallFeatures,
    CallShape,
    IvrBehaviour,
    Label,
    LabelEvent,
    PastCall,
    PreQueueFeatures,
    local_hour,
    resolve_labels,
    summarise_history,
)
from telephony.screening.score import (
    Decision,
    Effect,
    Reason,
    Score,
    ScoreConfig,
    ScoreConfigError,
    Weights,
    decide,
    expected_delay_seconds,
    load_score_config,
    post_call_score,
    pre_queue_score,
)

__all__ = [
    "FIRST_TIME",
    "CallFeatures",
    "CallShape",
    "CallerHistory",
    "Decision",
    "Effect",
    "IvrBehaviour",
    "Label",
    "LabelEvent",
    "PastCall",
    "PreQueueFeatures",
    "Reason",
    "Score",
    "ScoreConfig",
    "ScoreConfigError",
    "Weights",
    "decide",
    "expected_delay_seconds",
    "load_score_config",
    "local_hour",
    "post_call_score",
    "pre_queue_score",
    "resolve_labels",
    "summarise_history",
]
