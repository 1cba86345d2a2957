"""URL routes of the project; /healthz is answered by stack_settings.health.HealthCheckMiddleware."""

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("core.urls")),
]

if settings.DEBUG:
    # Development only: in production nginx serves /media/ from the shared volume.
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
