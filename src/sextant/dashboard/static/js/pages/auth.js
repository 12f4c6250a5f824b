// Sign in and sign up.
import { api, signIn } from "../api.js";
import { h, clear, formError } from "../util.js";

export function render(main, mode, { loadAccount, go }) {
  const signup = mode === "signup";
  document.title = (signup ? "Sign up" : "Sign in") + " · Sextant";
  const name = h("input", { id: "name", name: "name", autocomplete: "name", required: true, maxlength: 200 });
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "email", required: true });
  const password = h("input", {
    id: "password", name: "password", type: "password", required: true,
    autocomplete: signup ? "new-password" : "current-password", minlength: signup ? 10 : null,
  });
  const submit = h("button", { class: "btn", type: "submit" }, signup ? "Create account" : "Sign in");
  const form = h("form", {
    class: "card", novalidate: false,
    onsubmit: async (e) => {
      e.preventDefault();
      formError(form, null);
      submit.disabled = true;
      try {
        if (signup) {
          await api("/api/v1/auth/register", {
            method: "POST", anonymous: true,
            body: { name: name.value, email: email.value, password: password.value },
          });
        }
        await signIn(email.value, password.value);
        await loadAccount();
        go("/");
      } catch (err) {
        formError(form, err);
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("h1", {}, signup ? "Create your account" : "Welcome back"),
  h("p", { class: "muted small" }, signup
    ? "Self-hosted analytics for your sites, apps, APIs and wallets."
    : "Sign in to see your projects."),
  signup ? [h("label", { for: "name" }, "Name"), name] : null,
  h("label", { for: "email" }, "Email"), email,
  h("label", { for: "password" }, "Password"), password,
  signup ? h("p", { class: "muted small" }, "At least 10 characters, with a letter and a non-letter.") : null,
  submit);
  clear(main, h("div", { class: "auth" },
    h("div", { class: "brand" }, h("img", { src: "/assets/favicon.svg", alt: "" }), "Sextant"),
    form,
    h("p", { class: "muted small", style: { textAlign: "center" } }, signup
      ? ["Already have an account? ", h("a", { href: "#/login" }, "Sign in")]
      : ["New here? ", h("a", { href: "#/signup" }, "Create an account")])));
  (signup ? name : email).focus();
}
