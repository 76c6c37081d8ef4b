"""The end model's state in the status bar: loading, the model and adapter it serves, the first
start's provisioning dialog, and the ranker training in the background after a knowledge import."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QProgressDialog, QStatusBar, QWidget

from app.ui.evolution import apply_active_adapter
from app.ui.services import Services


class ModelStatus(QObject):
    """Follows the model worker's signals; ``ready`` fires once the end model has loaded."""

    ready = Signal()

    def __init__(self, services: Services, status_bar: QStatusBar, window: QWidget) -> None:
        super().__init__(window)
        self.services = services
        self.status_bar = status_bar
        self.window = window
        self.model_ready = False
        self.provision_dialog: QProgressDialog | None = None
        self.label = QLabel(self.tr("loading the end model…"))
        self.ranker_status = QLabel()
        self.ranker_status.setObjectName("rankerStatus")
        self.ranker_bar = QProgressBar()
        self.ranker_bar.setObjectName("rankerProgress")
        self.ranker_bar.setMaximumWidth(160)
        self.ranker_bar.setTextVisible(False)
        self._ranker_stage = ""
        for widget in (self.ranker_status, self.ranker_bar):
            status_bar.addPermanentWidget(widget)
            widget.hide()
        status_bar.addPermanentWidget(self.label)
        model = services.model
        model.loaded.connect(self._loaded)
        model.load_failed.connect(self._failed)
        model.provision_progress.connect(self._provision_progress)
        services.ranker_progress.connect(self._ranker_progress)
        services.ranker_finished.connect(self._ranker_finished)

    def reloading(self) -> None:
        """The settings changed the model: it loads again."""
        self.model_ready = False
        self.label.setText(self.tr("loading the end model…"))
        self.services.load_model()

    def _provision_progress(self, done: int, total: int) -> None:
        dialog = self.provision_dialog
        if dialog is None:
            dialog = QProgressDialog(
                self.tr("First start: assembling and verifying the embedded model…"),
                "",
                0,
                1000,
                self.window,
            )
            dialog.setObjectName("provisionDialog")
            dialog.setWindowTitle(self.tr("Preparing the end model"))
            dialog.setCancelButton(None)
            dialog.setMinimumDuration(0)
            dialog.setAutoClose(False)
            dialog.setAutoReset(False)
            # Not modal: a modal progress dialog spins the event loop inside setValue().
            dialog.setWindowModality(Qt.WindowModality.NonModal)
            self.provision_dialog = dialog
            dialog.show()
        dialog.setLabelText(
            self.tr(
                "First start: assembling and verifying the embedded model… {0} of {1} MB"
            ).format(done // 1_000_000, total // 1_000_000)
        )
        dialog.setValue(int(done * 1000 / max(total, 1)))

    def _ranker_progress(self, stage: str, done: int, total: int) -> None:
        """The ranker trains in the background after a knowledge import: a bar, not a dialog."""
        self._ranker_stage = stage
        if stage == "encode" and total:
            text = self.tr("Training the ranker: reading the shop's chats {0} of {1}…").format(
                done, total
            )
        elif stage == "matcher" and total:
            text = self.tr("Training the ranker: learning the shop's replies, pass {0} of {1}…")
            text = text.format(done, total)
        else:
            text = self.tr("Training the ranker on the shop's chats…")
        self.ranker_status.setText(text)
        self.ranker_bar.setRange(0, total)  # 0 to 0: busy, no count
        self.ranker_bar.setValue(done)
        self.ranker_status.show()
        self.ranker_bar.show()

    def _ranker_finished(self, version: str) -> None:
        self.ranker_bar.hide()
        self.ranker_status.hide()
        if version:
            message = self.tr(
                "Ranker {0} trained and active: candidate scores are calibrated"
            ).format(version)
        elif self._ranker_stage == "skipped":
            message = self.tr(
                "Too little chat history to train a ranker yet: candidate scores stay uncalibrated"
            )
        else:
            return
        self.status_bar.showMessage(message, 15000)

    def _close_provision_dialog(self) -> None:
        if self.provision_dialog is not None:
            self.provision_dialog.close()
            self.provision_dialog.deleteLater()
            self.provision_dialog = None

    def _loaded(self, profile: str) -> None:
        self._close_provision_dialog()
        self.model_ready = True
        self.label.setText(self.tr("end model: {0}").format(profile))
        self.apply_adapter()
        self.ready.emit()

    def _failed(self, message: str) -> None:
        self._close_provision_dialog()
        self.model_ready = False
        self.label.setText(self.tr("no end model"))
        self.services.report(
            self.tr("The end model could not be loaded"),
            message
            + " "
            + self.tr("Choose another model in Settings; you can still type replies yourself."),
        )

    def apply_adapter(self) -> None:
        """Load the store's active adapter into the running model (on the model worker)."""
        if self.services.model.model is None and not self.model_ready:
            return
        store = self.services.store

        def done(version: str | None) -> None:
            base = self.services.model.profile
            self.label.setText(
                self.tr("end model: {0} + adapter {1}").format(base, version)
                if version
                else self.tr("end model: {0}").format(base)
            )

        def failed(exc: BaseException) -> None:
            self.services.report(self.tr("Loading the active adapter"), exc)
            # Show what the model serves now: the base model after an adapter that was refused.
            self.services.model.call(lambda model: model.active_adapter, done)

        self.services.model.call(lambda model: apply_active_adapter(model, store), done, failed)
