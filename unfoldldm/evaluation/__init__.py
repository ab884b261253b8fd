"""Evaluation: the protocol of docs/evaluation.md, metrics (PSNR, SSIM, LPIPS), classical baselines and reports.

``python -m unfoldldm eval --model M --task denoise|deblur|sr4x --data DIR ...`` (see :mod:`.cli`).
Nothing heavy is imported here: the command line builds its parser from :mod:`.cli` on every call.
"""
