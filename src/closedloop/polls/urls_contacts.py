"""Contacts, participation, inbox and message log pages."""

from django.urls import path

from closedloop.polls import views_contacts, views_inbox

urlpatterns = [
    path("contacts/", views_contacts.contact_list, name="contact_list"),
    path("contacts/new/", views_contacts.contact_create, name="contact_create"),
    path("contacts/<int:pk>/", views_contacts.contact_detail, name="contact_detail"),
    path("contacts/<int:pk>/edit/", views_contacts.contact_edit, name="contact_edit"),
    path("contacts/<int:pk>/delete/", views_contacts.contact_delete, name="contact_delete"),
    path("participation/", views_contacts.participation, name="participation"),
    path("inbox/", views_inbox.inbox, name="inbox"),
    path("inbox/refresh/", views_inbox.inbox_refresh, name="inbox_refresh"),
    path("inbox/<int:pk>/", views_inbox.conversation, name="conversation"),
    path("messages/", views_inbox.message_log, name="message_log"),
]
