from django.urls import path

from chat.web import api, views

app_name = "chat"

urlpatterns = [
    path("", views.room_list, name="room_list"),
    path("rooms/<slug:slug>/", views.room_detail, name="room"),
    path("rooms/<slug:slug>/files/<int:attachment_id>/", views.attachment_download, name="attachment"),
    path("api/token/", api.token_issue, name="api_token"),
    path("api/rooms/", api.rooms, name="api_rooms"),
    path("api/rooms/<slug:slug>/members/", api.room_members, name="api_room_members"),
    path("api/rooms/<slug:slug>/members/<str:username>/", api.room_member, name="api_room_member"),
    path("api/rooms/<slug:slug>/messages/", api.room_messages, name="api_room_messages"),
    path("api/dms/", api.dms, name="api_dms"),
    path("api/users/", api.users, name="api_users"),
    path("api/search/", api.message_search, name="api_search"),
]
