"""installer/xiaoer.ico for the Inno Setup wizard, from installer/xiaoer.png (needs Pillow).

PyInstaller converts the PNG for the program itself; Inno Setup wants a real .ico.
"""

from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve().parents[1]
Image.open(HERE / "xiaoer.png").save(
    HERE / "xiaoer.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]
)
