"""How workers learn of new tasks: PostgreSQL NOTIFY on a channel, or an in-process event (embedded mode)."""

import asyncio

NOTIFY_CHANNEL = "aiprocessingtask"


class Wakeup:
    """In-process wake-up for a worker sharing the API's process (embedded mode)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification or the timeout; True when notified."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._event.clear()
        return True
