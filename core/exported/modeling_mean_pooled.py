"""A sequence classifier on mean-pooled token states, as exported by prompt-or-finetune.

Self-contained (torch and transformers only). Sentence-transformer encoders such as all-MiniLM-L6-v2 are trained to be read
through the mean of their token states, not through BERT's [CLS] pooler, so their fine-tuned classifiers are: encoder ->
mean over the real (unpadded) tokens -> L2 normalisation when the encoder normalises -> linear layer. The stock
*ForSequenceClassification classes read the [CLS] token instead, hence this file; load it with
`pipeline("text-classification", model=DIR, trust_remote_code=True)`."""

from __future__ import annotations

from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput


class MeanPooledConfig(PretrainedConfig):
    """The encoder's own config (`encoder`, a dict with its model_type) plus the pooling settings."""

    model_type = "mean-pooled-classifier"

    def __init__(self, encoder: dict | None = None, normalize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder or {}
        self.normalize = bool(normalize)

    def encoder_config(self) -> PretrainedConfig:
        spec = dict(self.encoder)
        return AutoConfig.for_model(spec.pop("model_type"), **spec)


class MeanPooledForSequenceClassification(PreTrainedModel):
    """encoder -> masked mean pooling -> optional L2 normalisation -> linear classifier."""

    config_class = MeanPooledConfig
    base_model_prefix = "encoder"

    def __init__(self, config: MeanPooledConfig):
        super().__init__(config)
        encoder_config = config.encoder_config()
        self.encoder = AutoModel.from_config(encoder_config)
        if getattr(self.encoder, "pooler", None) is not None:
            self.encoder.pooler = None  # never used: the classifier reads the mean of the token states
        self.classifier = nn.Linear(encoder_config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module):
        pass  # every weight comes from the checkpoint

    def get_input_embeddings(self):
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state  # (B, T, H)
        if attention_mask is None:
            pooled = hidden.mean(1)
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, dim=-1)
        logits = self.classifier(pooled)  # (B, C)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)
