"""The decision: what carebot does with one tweet, and the voice it says it in.

triage (the bands and hard rules), policy (the versioned thresholds), the answer score (the calibrated
FAQ answer model), cues in the wording, personal data, tone, and calibration. Pure: no I/O, no Rasa.
"""
