"""Tasks: what a language model, classifier, forecaster or seq2seq model needs for training."""

from rnnkit.tasks.language_model import LanguageModelTask, LMDataConfig, LMModelConfig

__all__ = ["LMDataConfig", "LMModelConfig", "LanguageModelTask"]
