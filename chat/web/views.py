"""Browser pages: sign-up, the room list with its create form, the room page, attachments."""

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from chat.domain import selectors, services
from chat.models import Attachment
from chat.presence import get_presence_store
from chat.protocol import codes
from chat.protocol.errors import ChatError
from chat.web.auth import authenticate_request
from chat.web.forms import RoomCreateForm, SignupForm

# A slug that reverse() accepts, replaced by the page's {slug} placeholder (it fills it in when it
# switches rooms, as it does in the socket paths of chat.protocol.codes).
_SLUG_STAND_IN = "slug-stand-in"

# Never rendered by the browser: served as downloads whatever their declared type.
INLINE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/pdf"})


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat:room_list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("chat:room_list")
    return render(request, "registration/signup.html", {"form": form})


def rooms_with_online(*, user, dms: bool = True) -> list[dict]:
    """List the rooms visible to the user with how many are online in each (DMs too, unless dms is False)."""
    rooms = [r for r in selectors.room_list_visible(user=user) if dms or not r.dm]
    counts = async_to_sync(get_presence_store().online_counts)(rooms=[r.slug for r in rooms])
    return [{"slug": r.slug, "name": r.name, "private": r.private, "online": counts.get(r.slug, 0)} for r in rooms]


@login_required
@require_http_methods(["GET", "POST"])
def room_list(request: HttpRequest) -> HttpResponse:
    form = RoomCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            room = services.room_create(user=request.user, **form.cleaned_data)
        except ChatError as exc:
            form.add_error(None, exc.detail)
        else:
            messages.success(request, f"Room {room.name} created.")
            return redirect("chat:room", slug=room.slug)
    # The directory of rooms: DMs live in the sidebar, under the other user's name.
    return render(request, "chat/room_list.html", {"rooms": rooms_with_online(user=request.user, dms=False),
                                                   "form": form})


@login_required
def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = selectors.room_get(slug=slug)
    if room is None:
        raise Http404("No such room")
    if not selectors.room_user_can_access(room=room, user=request.user):
        return render(request, "403.html", {"reason": "This room is private."}, status=403)
    # A DM is named after the other user in each one's view; its stored name holds both.
    name = selectors.dm_names_for(user=request.user, room_ids=[room.pk]).get(room.pk, room.name) if room.dm else room.name
    context = {
        "room": room,
        "room_name": name,
        "room_path": _path_pattern("chat:room"),
        "room_ws_path": codes.ROOM_SOCKET_PATH,
        "user_ws_path": codes.USER_SOCKET_PATH,
        "api_paths": {
            "rooms": reverse("chat:api_rooms"),
            "members": _path_pattern("chat:api_room_members"),
            "messages": _path_pattern("chat:api_room_messages"),
            "dms": reverse("chat:api_dms"),
            "users": reverse("chat:api_users"),
            "search": reverse("chat:api_search"),
        },
        "login_url": reverse("login"),
        "chat_config": codes.client_config(),
    }
    return render(request, "chat/room.html", context)


def _path_pattern(name: str) -> str:
    """Return the path of URL `name` for one room with a {slug} placeholder, which the page fills in."""
    return reverse(name, kwargs={"slug": _SLUG_STAND_IN}).replace(_SLUG_STAND_IN, "{slug}")


def attachment_download(request: HttpRequest, slug: str, attachment_id: int) -> HttpResponse:
    """Serve an attachment to a member: a browser by its session, a script by `Authorization: Bearer`."""
    try:
        how = authenticate_request(request)
    except ChatError as exc:
        response = HttpResponse(exc.detail, status=exc.status, content_type="text/plain")
        response["WWW-Authenticate"] = "Bearer"
        return response
    if how is None:
        return redirect_to_login(request.get_full_path())
    user = request.user
    attachment = get_object_or_404(Attachment.objects.select_related("message__room"), pk=attachment_id)
    room = attachment.message.room
    if room.slug != slug:
        raise Http404("No such attachment")
    if not selectors.room_user_can_access(room=room, user=user):
        return HttpResponse("Forbidden", status=403, content_type="text/plain")
    inline = attachment.content_type in INLINE_TYPES
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=not inline,
        filename=attachment.name,
        content_type=attachment.content_type if inline else "application/octet-stream",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
