"""The dial-in prompts, spoken by espeak-ng (offline) once per start into the data folder.

rtpengine plays them to the caller's leg alone; without espeak-ng the caller hears
nothing but is still asked for the PIN by DTMF.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

log = logging.getLogger("vrooms.pstn")

TEXTS = {
    "pin": "Welcome. Please enter your PIN, then press hash.",
    "wrong": "That PIN is not right. Please try again.",
    "goodbye": "Sorry, that PIN is not right. Goodbye.",
}


async def speak_prompts(folder: Path) -> dict[str, Path]:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        log.warning("espeak-ng not found: dial-in callers will hear no prompts (apt-get install espeak-ng)")
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, text in TEXTS.items():
        path = folder / f"{name}.wav"
        process = await asyncio.create_subprocess_exec(
            espeak, "-w", str(path), text, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        if await process.wait() == 0:
            files[name] = path
    return files
