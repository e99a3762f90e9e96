from django.urls import path

from services import views

app_name = "services"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("config/drift", views.drift, name="drift"),
]
