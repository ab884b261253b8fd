"""``shared.state`` (progress and the Interrupt/Skip buttons) and ``shared.opts`` (settings)."""


class State:
    """What the WebUI's progress bar reads and its Interrupt/Skip buttons set."""

    def __init__(self) -> None:
        self.interrupted = False
        self.skipped = False
        self.job = ""
        self.job_no = 0
        self.job_count = 0
        self.sampling_step = 0
        self.sampling_steps = 0
        self.textinfo = None

    def interrupt(self) -> None:
        self.interrupted = True

    def skip(self) -> None:
        self.skipped = True

    def begin(self, job: str = "(unknown)") -> None:
        """A new job starts: the buttons of the previous one no longer count."""
        self.__init__()
        self.job = job

    def end(self) -> None:
        self.job = ""
        self.job_count = 0


class Options:
    """Settings, read as attributes; unknown names raise AttributeError like the real ``opts``."""

    def __init__(self, **data) -> None:
        self.__dict__["data"] = dict(data)

    def __getattr__(self, name):
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value) -> None:
        self.__dict__["data"][name] = value


state = State()
opts = Options(
    postprocessing_operation_order=[],
    postprocessing_disable_in_extras=[],
    postprocessing_enable_in_main_ui=[],
    upscaling_max_images_in_cache=5,
)
