from django import forms
from django.contrib.auth.forms import UserCreationForm


class RoomCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.SlugField(max_length=64, required=False, help_text="Leave empty to derive it from the name.")
    private = forms.BooleanField(required=False, help_text="Only members may read or post.")


class SignupForm(UserCreationForm):
    pass
