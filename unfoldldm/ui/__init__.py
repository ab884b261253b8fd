"""Gradio front ends of UnfoldLDM: a restoration tab any Gradio host can embed, and a standalone app.

    unfoldldm.ui.core      gradio-free helpers: :func:`restore_picture`, :func:`restore_folder`,
                           :class:`UIOptions`, :class:`ModelRegistry` (testable without gradio)
    unfoldldm.ui.builder   :func:`build_restore_ui` - the tab, built inside the caller's gr.Blocks
    unfoldldm.ui.app       the standalone app (``python -m unfoldldm app``)
    unfoldldm.ui.cli       the ``app`` subcommand (argument parsing only; imports lazily)

Gradio is imported only by ``builder``, ``compat`` and ``app``; nothing outside this package
imports gradio. Importing this package itself is cheap (no torch, no gradio).
"""
