"""Helpers shared by the browser tests: console error capture and screenshots."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import ConsoleMessage, Dialog, Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


class PageErrors:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"pageerror: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.messages.append(f"console.error: {message.text}")


def answer_dialogs(page: Page, text: str | None = None) -> list[str]:
    """Accept every dialog of `page` (typing `text` into a prompt); their messages, in order."""
    messages: list[str] = []

    def answer(dialog: Dialog) -> None:
        messages.append(dialog.message)
        if text is None:
            dialog.accept()
        else:
            dialog.accept(text)

    page.on("dialog", answer)
    return messages


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
