from django.apps import AppConfig


class PagesConfig(AppConfig):
    """The pages people browse: reads of the registry and of health, composed. Above both."""

    name = "pages"
    verbose_name = "Pages"
