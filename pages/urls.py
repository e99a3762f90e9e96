from django.urls import path

from pages import views

app_name = "pages"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("config/drift", views.drift, name="drift"),
]
