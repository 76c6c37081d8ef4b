"""Team mode in the status bar: whether the shop's database is reachable, and how many ratings
wait on this computer while it is not (``app.store.team``). Hidden in solo mode."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from app.ui.services import Services


class ShopStatus(QLabel):
    def __init__(self, services: Services, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shopStatus")
        sync = services.shop_sync
        self.setVisible(sync is not None)
        services.shop_status.connect(self.show_status)
        if sync is not None:
            self.show_status(sync.status.state, sync.status.pending)

    def show_status(self, state: str, pending: int) -> None:
        if state == "online":
            text = self.tr("Shop database: connected")
        elif state == "offline":
            text = self.tr("Shop database unreachable: {0} ratings kept here").format(pending)
        else:
            text = self.tr("Shop database: connecting…")
        self.setText(text)
