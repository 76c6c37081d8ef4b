"""The settings dialog's pages: each builds its widgets from the settings it is given and reads
them back (``values()`` for the UiSettings fields it owns); the dialog composes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.cloud import providers, secrets
from app.cloud.redact import redact_for_cloud
from app.engine import weights
from app.ui.settings import MAX_SHOTS, UiSettings
from app.ui.workers import Runner

if TYPE_CHECKING:
    from app.ui.local_teacher import LocalTeacher, TeacherControl

WARNING_STYLE = "QLabel { background: #fff3cd; color: #856404; padding: 6px; border-radius: 4px; }"


def _spin(low: float, high: float, step: float, decimals: int = 2) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    return box


def _combo(values: list[str], current: str, editable: bool = False) -> QComboBox:
    box = QComboBox()
    box.setEditable(editable)
    box.addItems(values)
    if current not in values:
        box.addItem(current)
    box.setCurrentText(current)
    return box


def _choices(items: tuple[tuple[str, str], ...], current: str) -> QComboBox:
    """A combo box showing labels for values; ``currentData()`` is the value."""
    box = QComboBox()
    for value, label in items:
        box.addItem(label, value)
    box.setCurrentIndex(max(box.findData(current), 0))
    return box


def _int_spin(low: int, high: int, value: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setValue(value)
    return box


def _file_row(field: QWidget, browse: Callable[[], None], label: str) -> QHBoxLayout:
    """``field`` with a Browse… button beside it."""
    row = QHBoxLayout()
    button = QPushButton(label)
    button.clicked.connect(browse)
    row.addWidget(field, 1)
    row.addWidget(button)
    return row


class EndModelPage(QWidget):
    """The end model: which one, on what backend and device, and how it samples."""

    def __init__(self, s: UiSettings) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.model = _combo([*weights.PROFILES, *weights.user_models()], s.model, editable=True)
        self.model.setToolTip(
            self.tr(
                "A built-in profile, a registered model, a GGUF file or an HF directory (e.g. ChatGLM3-6B)"
            )
        )
        form.addRow(
            self.tr("End model"), _file_row(self.model, self._browse_model, self.tr("Browse…"))
        )
        self.backend = _combo(["llamacpp", "transformers"], s.backend)
        form.addRow(self.tr("Backend"), self.backend)
        self.device = _combo(["auto", "cpu", "cuda"], s.device)
        form.addRow(self.tr("Device"), self.device)
        self.quantization = _combo(["none", "8bit", "4bit"], s.quantization)
        self.quantization.setToolTip(self.tr("8-bit / 4-bit: transformers backend on a CUDA GPU"))
        form.addRow(self.tr("Quantization"), self.quantization)
        self.n_gpu_layers = _int_spin(0, 999, s.n_gpu_layers)
        form.addRow(self.tr("GPU layers (llama.cpp)"), self.n_gpu_layers)
        self.n_ctx = _int_spin(256, 131072, s.n_ctx, step=256)
        form.addRow(self.tr("Context window (tokens)"), self.n_ctx)
        self.prompt_lang = _combo(["zh", "en"], s.prompt_lang)
        form.addRow(self.tr("System prompt language"), self.prompt_lang)
        self.temperature = _spin(0.0, 2.0, 0.05)
        self.temperature.setValue(s.temperature)
        form.addRow(self.tr("Temperature"), self.temperature)
        self.top_p = _spin(0.01, 1.0, 0.05)
        self.top_p.setValue(s.top_p)
        form.addRow(self.tr("Top p"), self.top_p)
        self.max_tokens = _int_spin(1, 4096, s.max_tokens)
        form.addRow(self.tr("Longest draft (tokens)"), self.max_tokens)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, self.tr("End model (GGUF)"), "", "GGUF (*.gguf);;*"
        )
        if not path:
            path = QFileDialog.getExistingDirectory(self, self.tr("Hugging Face model directory"))
        if path:
            self.model.setCurrentText(path)

    def values(self) -> dict[str, Any]:
        return {
            "model": self.model.currentText().strip(),
            "backend": self.backend.currentText(),
            "device": self.device.currentText(),
            "quantization": self.quantization.currentText(),
            "n_gpu_layers": self.n_gpu_layers.value(),
            "n_ctx": self.n_ctx.value(),
            "prompt_lang": self.prompt_lang.currentText(),
            "temperature": self.temperature.value(),
            "top_p": self.top_p.value(),
            "max_tokens": self.max_tokens.value(),
        }


class TeacherPage(QWidget):
    """The teacher: provider, model, endpoint and prices; the API key goes to the OS keyring only.
    With the app's local teacher, its status and Start/Stop control."""

    def __init__(
        self, teacher: providers.TeacherConfig, local_teacher: LocalTeacher | None = None
    ) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.provider = _combo(list(providers.PROVIDERS), teacher.provider)
        form.addRow(self.tr("Provider"), self.provider)
        self.teacher_model = QLineEdit(teacher.model)
        self.teacher_model.setPlaceholderText(
            self.tr("e.g. gemini-3.8-flash, deepseek-chat; empty: the default")
        )
        form.addRow(self.tr("Model"), self.teacher_model)
        self.base_url = QLineEdit(teacher.base_url)
        self.base_url.setPlaceholderText("https://api.deepseek.com/v1")
        form.addRow(self.tr("Base URL"), self.base_url)
        self.timeout = _spin(1.0, 600.0, 5.0, 0)
        self.timeout.setValue(teacher.timeout)
        form.addRow(self.tr("Timeout (s)"), self.timeout)
        self.price_in = _spin(0.0, 1000.0, 0.001, 4)
        self.price_in.setValue(teacher.price_per_1k_input)
        form.addRow(self.tr("Price per 1000 input tokens"), self.price_in)
        self.price_out = _spin(0.0, 1000.0, 0.001, 4)
        self.price_out.setValue(teacher.price_per_1k_output)
        form.addRow(self.tr("Price per 1000 output tokens"), self.price_out)
        key_row = QHBoxLayout()
        self.api_key = QLineEdit()
        self.api_key.setObjectName("apiKey")
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText(self.tr("stored only in the OS keyring"))
        self.save_key_button = QPushButton(self.tr("Save key"))
        self.save_key_button.clicked.connect(self.save_key)
        key_row.addWidget(self.api_key, 1)
        key_row.addWidget(self.save_key_button)
        form.addRow(self.tr("API key"), key_row)
        self.key_status = QLabel("")
        self.key_status.setObjectName("keyStatus")
        self.key_status.setWordWrap(True)
        form.addRow("", self.key_status)
        self.keyring_warning = QLabel("")
        self.keyring_warning.setObjectName("keyringWarning")
        self.keyring_warning.setWordWrap(True)
        self.keyring_warning.setStyleSheet(WARNING_STYLE)
        form.addRow(self.keyring_warning)
        self.teacher_control: TeacherControl | None = None
        if local_teacher is not None:
            from app.ui.local_teacher import TeacherControl

            self.teacher_control = TeacherControl(local_teacher)
            form.addRow(self.teacher_control)
        self.provider.currentTextChanged.connect(self._provider_changed)
        self._provider_changed(self.provider.currentText())

    def _provider_changed(self, provider: str) -> None:
        needs_key = provider != "local"
        if self.teacher_control is not None:
            self.teacher_control.setVisible(not needs_key)
        self.api_key.setEnabled(needs_key)
        self.save_key_button.setEnabled(needs_key)
        self.base_url.setEnabled(provider != "gemini")
        warning = secrets.keyring_warning() if needs_key else None
        self.keyring_warning.setText(warning or "")
        self.keyring_warning.setVisible(bool(warning))
        if not needs_key:
            self.key_status.setText(self.tr("The local teacher needs no key."))
            return
        try:
            # Keys are kept per provider and host: the one for the base URL entered.
            base_url = self.base_url.text().strip() or None
            has_key = secrets.get_api_key(provider, base_url) is not None
        except secrets.SecretsError as exc:
            self.key_status.setText(str(exc))
            return
        self.key_status.setText(
            self.tr("A key is saved for {0}.").format(provider)
            if has_key
            else self.tr("No key saved for {0} yet.").format(provider)
        )

    def save_key(self) -> bool:
        """Store the typed key in the OS keyring; the field is cleared either way."""
        key, provider = self.api_key.text(), self.provider.currentText()
        if not key.strip():
            return True
        try:
            secrets.set_api_key(provider, key, self.base_url.text().strip() or None)
        except secrets.SecretsError as exc:
            self.key_status.setText(str(exc))
            self.api_key.clear()
            return False
        self.api_key.clear()
        self.key_status.setText(
            self.tr("The key for {0} is saved in the OS keyring.").format(provider)
        )
        return True

    def config(self) -> providers.TeacherConfig:
        """The teacher as entered; raises XiaoerError naming what is wrong."""
        return providers.TeacherConfig(
            provider=self.provider.currentText(),  # type: ignore[arg-type]
            model=self.teacher_model.text().strip(),
            base_url=self.base_url.text().strip(),
            timeout=self.timeout.value(),
            price_per_1k_input=self.price_in.value(),
            price_per_1k_output=self.price_out.value(),
        )


class ScoringPage(QWidget):
    """Scoring (α, Θ, the low-score threshold), teacher labels, and when evolution runs."""

    def __init__(self, s: UiSettings) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.alpha = _spin(0.0, 1.0, 0.05)
        self.alpha.setValue(s.alpha)
        form.addRow(self.tr("α (weight of similarity)"), self.alpha)
        self.theta = _spin(0.0, 1.0, 0.05)
        self.theta.setValue(s.theta)
        form.addRow(self.tr("Θ (matcher reliability threshold)"), self.theta)
        self.threshold = _spin(0.0, 1.0, 0.05)
        self.threshold.setValue(s.low_score_threshold)
        form.addRow(self.tr("Low-score threshold"), self.threshold)
        self.label_weak = QCheckBox(
            self.tr("Ask the teacher for a label on a bad rating and on low scores")
        )
        self.label_weak.setChecked(s.label_weak_drafts)
        form.addRow(self.label_weak)
        self.policy = _choices(
            (
                ("off", self.tr("Off (Evolve now only)")),
                ("daily", self.tr("Once a day")),
                ("after_labels", self.tr("After enough new labels")),
            ),
            s.evolve_policy,
        )
        form.addRow(self.tr("Automatic evolution"), self.policy)
        self.min_labels = _int_spin(1, 100000, s.evolve_min_labels)
        form.addRow(self.tr("New labels before a run"), self.min_labels)

    def values(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha.value(),
            "theta": self.theta.value(),
            "low_score_threshold": self.threshold.value(),
            "label_weak_drafts": self.label_weak.isChecked(),
            "evolve_policy": self.policy.currentData(),
            "evolve_min_labels": self.min_labels.value(),
        }


class WorkspacePage(QWidget):
    """The language, quick phrases, the replay corpus and the shop's past dialogues."""

    def __init__(self, s: UiSettings) -> None:
        super().__init__()
        form = QFormLayout(self)
        self.language = _choices(
            (("system", self.tr("Follow the system")), ("zh_CN", "简体中文"), ("en", "English")),
            s.ui_language,
        )
        form.addRow(self.tr("Language (after a restart)"), self.language)
        self.phrases = QPlainTextEdit("\n".join(s.quick_phrases))
        self.phrases.setToolTip(self.tr("One quick phrase per line"))
        form.addRow(self.tr("Quick phrases"), self.phrases)
        self.replay_corpus = QLineEdit(s.replay_corpus)
        self.replay_corpus.setPlaceholderText(
            self.tr("a JDDC 2019 chat file, e.g. ../shared/data/jddc2019/chat_0.1per.txt")
        )
        form.addRow(
            self.tr("Replay corpus"),
            _file_row(self.replay_corpus, self._browse_corpus, self.tr("Browse…")),
        )
        self.replay_interval = _spin(1.0, 3600.0, 5.0, 0)
        self.replay_interval.setValue(s.replay_interval_s)
        form.addRow(self.tr("Seconds between replay customers"), self.replay_interval)
        self.past_dialogues = QLineEdit(s.past_dialogues)
        self.past_dialogues.setPlaceholderText(
            self.tr("a JDDC 2018 .enc file, a JDDC 2019 chat file or JSONL pairs")
        )
        self.past_dialogues.setToolTip(
            self.tr(
                "The shop's past dialogues: the end model and the teacher are shown the ones "
                "most similar to the customer's message"
            )
        )
        form.addRow(
            self.tr("Past dialogues"),
            _file_row(self.past_dialogues, self._browse_past_dialogues, self.tr("Browse…")),
        )
        self.shots = _int_spin(0, MAX_SHOTS, s.shots)
        self.shots.setToolTip(self.tr("0 shows none"))
        form.addRow(self.tr("Past dialogues shown per draft"), self.shots)

    def _browse_corpus(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Replay corpus"), "", "*.txt;;*")
        if path:
            self.replay_corpus.setText(path)

    def _browse_past_dialogues(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("Past dialogues"),
            "",
            self.tr("Dialogues (*.enc *.txt *.jsonl);;All files (*)"),
        )
        if path:
            self.past_dialogues.setText(path)

    def values(self) -> dict[str, Any]:
        phrases = [p.strip() for p in self.phrases.toPlainText().splitlines() if p.strip()]
        return {
            "ui_language": self.language.currentData(),
            "quick_phrases": phrases,
            "replay_corpus": self.replay_corpus.text().strip(),
            "replay_interval_s": self.replay_interval.value(),
            "past_dialogues": self.past_dialogues.text().strip(),
            "shots": self.shots.value(),
        }


class PrivacyPage(QWidget):
    """What a cloud teacher would receive: the privacy firewall's output for a typed message.

    The firewall loads its dictionaries on first use (~0.5 s) and long text takes tens of ms: the
    preview is redacted on its own worker so typing never waits for it. ``show_error`` shows why
    a redaction failed."""

    def __init__(self, show_error: Callable[[str], None]) -> None:
        super().__init__()
        self.show_error = show_error
        box = QVBoxLayout(self)
        box.addWidget(
            QLabel(
                self.tr("What a cloud teacher would receive (the local teacher gets the original):")
            )
        )
        self.redact_input = QPlainTextEdit()
        self.redact_input.setObjectName("redactInput")
        self.redact_input.setPlaceholderText(
            self.tr("Type a customer message with a phone number, an address…")
        )
        self.redact_output = QPlainTextEdit()
        self.redact_output.setObjectName("redactOutput")
        self.redact_output.setReadOnly(True)
        box.addWidget(self.redact_input)
        box.addWidget(self.redact_output)
        self.redact_worker = Runner("redact-preview", self)
        self._redact_next: str | None = None
        """Text typed while a redaction runs: only the latest is redacted next."""
        self.redact_input.textChanged.connect(self._update_redaction)

    def _update_redaction(self) -> None:
        self._redact_next = self.redact_input.toPlainText()
        if not self.redact_worker.busy:
            self._redact_latest()

    def _redact_latest(self) -> None:
        """Redact the latest text on the worker; one redaction runs at a time."""
        text, self._redact_next = self._redact_next, None
        if text is None:
            return
        self.redact_worker.submit(
            lambda: redact_for_cloud(text).redacted,
            done=self._redaction_done,
            error=self._redaction_failed,
        )

    def _redaction_done(self, redacted: str) -> None:
        if self._redact_next is not None:  # the text changed meanwhile: this result is stale
            self._redact_latest()
            return
        self.redact_output.setPlainText(redacted)

    def _redaction_failed(self, exc: BaseException) -> None:
        if self._redact_next is not None:
            self._redact_latest()
            return
        self.redact_output.clear()
        self.show_error(str(exc))
