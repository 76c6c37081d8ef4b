"""KTO (Ethayarajh et al., 2024): learn from unpaired thumbs-up / thumbs-down drafts.

A 👍 or 👎 without a better text is still a signal. KTO pushes the policy's log-likelihood ratio
to the reference model (here: the same model with the adapter switched off) up for desirable
replies and down for undesirable ones, relative to a running estimate of their KL divergence.
"""

from __future__ import annotations

from typing import Any

from app.evolve.data import IGNORE_INDEX


def reply_logprob(model: Any, batch: dict[str, Any]) -> Any:
    """Sum of the reply tokens' log-probabilities, one value per example."""
    import torch

    labels = batch["labels"]
    first = int((labels != IGNORE_INDEX).int().argmax(dim=1).min())
    out = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        logits_to_keep=labels.shape[1] - first + 1,
    )
    logp = torch.log_softmax(out.logits[:, :-1, :].float(), dim=-1)
    targets = labels[:, first:]
    mask = targets != IGNORE_INDEX
    picked = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1)


class KTOLoss:
    """The KTO objective with a running (detached) KL estimate, which suits batch size 1."""

    def __init__(
        self, beta: float = 0.1, desirable_weight: float = 1.0, undesirable_weight: float = 1.0
    ):
        self.beta = beta
        self.weights = (desirable_weight, undesirable_weight)
        self.kl = 0.0

    def __call__(self, model: Any, batch: dict[str, Any], desirable: Any) -> Any:
        import torch

        policy = reply_logprob(model, batch)
        with torch.no_grad(), model.disable_adapter():
            reference = reply_logprob(model, batch)
        ratio = policy - reference
        self.kl = 0.9 * self.kl + 0.1 * max(0.0, float(ratio.detach().mean()))
        good = self.weights[0] * (1 - torch.sigmoid(self.beta * (ratio - self.kl)))
        bad = self.weights[1] * (1 - torch.sigmoid(self.beta * (self.kl - ratio)))
        return torch.where(desirable, good, bad).mean()
