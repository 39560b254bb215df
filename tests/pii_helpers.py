"""Scenes with rendered text for the PII tests: a car rear with a plate, a page, handwriting, a shop sign."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from filter_helpers import photo

# Real people-dev photos (COCO, looked at by eye): legible licence plates / a street sign / nothing written.
REAL_PLATES = [
    "coco-val2017-000000002006.jpg",  # bus rear, "NA52 BUU"
    "coco-val2017-000000384513.jpg",  # cart, "CT 69SEX"
    "coco-val2017-000000001584.jpg",  # red car front, "ALM 89B"
]
REAL_SIGN = "coco-train2017-000000000094.jpg"  # street with a "PEACE WAY HOTEL" sign
REAL_SCOREBOARD = "coco-train2017-000000433998.jpg"  # a stadium scoreboard: dozens of small text lines
REAL_NO_TEXT = ["coco-train2017-000000000009.jpg", "coco-train2017-000000000025.jpg", "coco-train2017-000000000030.jpg"]


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def plate_scene(text: str = "NB52 KXT", size: tuple[int, int] = (800, 600), seed: int = 1) -> Image.Image:
    """A car's rear (body, lights, bumper) on a textured street, with a white registration plate."""
    image = photo(seed, size)
    draw = ImageDraw.Draw(image)
    width, height = size
    body = (int(0.18 * width), int(0.25 * height), int(0.82 * width), int(0.85 * height))
    draw.rounded_rectangle(body, radius=30, fill=(40, 70, 140))
    draw.rectangle((body[0] + 40, body[1] + 30, body[2] - 40, body[1] + 140), fill=(30, 35, 45))  # rear window
    for x in (body[0] + 20, body[2] - 90):
        draw.rectangle((x, body[1] + 170, x + 70, body[1] + 210), fill=(200, 30, 30))  # lights
    plate_w, plate_h = int(0.3 * width), int(0.075 * width)
    left, top = (width - plate_w) // 2, body[1] + 230
    draw.rectangle((left, top, left + plate_w, top + plate_h), fill=(245, 245, 240), outline=(10, 10, 10), width=3)
    text_font = font(int(plate_h * 0.72))
    box = draw.textbbox((0, 0), text, font=text_font)
    draw.text(
        (left + (plate_w - (box[2] - box[0])) / 2 - box[0], top + (plate_h - (box[3] - box[1])) / 2 - box[1]),
        text,
        font=text_font,
        fill=(15, 15, 15),
    )
    draw.rectangle((body[0], body[3] - 60, body[2], body[3] - 20), fill=(25, 25, 25))  # bumper
    return image


PARAGRAPH = (
    "Dear Mr Hartley, thank you for your letter of the 14th concerning the account held at our branch on "
    "Market Street. We have reviewed the statement and the transfer of the deposit to your new address, and "
    "we confirm that the balance will be credited within five working days. Please sign the enclosed form and "
    "return it with a copy of your passport. Yours sincerely, Margaret Ellis, Customer Services."
)


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if len(line) + len(word) + 1 > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line]


def document_scene(size: tuple[int, int] = (800, 600), seed: int = 2) -> Image.Image:
    """A typed letter lying on a desk: ~14 lines of small print filling most of the frame."""
    image = photo(seed, size)
    draw = ImageDraw.Draw(image)
    width, height = size
    page = (int(0.12 * width), int(0.06 * height), int(0.88 * width), int(0.96 * height))
    draw.rectangle(page, fill=(250, 250, 246))
    text_font = font(17)
    y = page[1] + 30
    for line in _wrap(PARAGRAPH * 2, 62)[:16]:
        draw.text((page[0] + 30, y), line, font=text_font, fill=(20, 20, 30))
        y += 29
    return image


def handwriting_scene(size: tuple[int, int] = (800, 600), seed: int = 3) -> Image.Image:
    """A notebook page with hand-written-like lines: uneven baseline, slant, size and ink from word to word."""
    rng = np.random.default_rng(seed)
    width, height = size
    page = Image.new("RGB", size, (236, 232, 214))
    draw = ImageDraw.Draw(page)
    for y in range(60, height, 34):
        draw.line((0, y, width, y), fill=(170, 190, 215), width=1)  # ruled lines
    words = PARAGRAPH.split()
    index = 0
    for y in range(34, height - 40, 34):
        x = 50 + int(rng.integers(0, 25))
        while x < width - 120 and index < 10 * len(words):
            word = words[index % len(words)]
            index += 1
            glyphs = Image.new("L", (len(word) * 16 + 20, 44), 0)
            ImageDraw.Draw(glyphs).text((6, 6), word, font=font(int(rng.integers(20, 25))), fill=255)
            glyphs = glyphs.transform(glyphs.size, Image.Transform.AFFINE, (1, 0.25, -6, 0, 1, 0))  # slant
            glyphs = glyphs.rotate(float(rng.uniform(-3, 3)), resample=Image.Resampling.BILINEAR)
            ink = tuple(int(v) for v in rng.integers(20, 70, 3))
            page.paste(Image.new("RGB", glyphs.size, ink), (x, y - 14 + int(rng.integers(-3, 4))), glyphs)
            x += glyphs.size[0] - 10 + int(rng.integers(0, 10))
    return page


def sign_scene(size: tuple[int, int] = (800, 600), seed: int = 4) -> Image.Image:
    """A shop front: a painted board with the shop's name over a window (what PASS kept)."""
    image = photo(seed, size)
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((60, 90, width - 60, 210), fill=(120, 30, 40))
    text_font = font(84)
    box = draw.textbbox((0, 0), "BAKERY", font=text_font)
    origin = ((width - (box[2] - box[0])) / 2 - box[0], 150 - (box[3] - box[1]) / 2 - box[1])
    draw.text(origin, "BAKERY", font=text_font, fill=(240, 220, 150))
    draw.rectangle((100, 250, width - 100, height - 40), fill=(70, 90, 100))  # window
    return image
