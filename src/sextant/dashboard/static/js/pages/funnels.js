import { h, clear } from "../util.js";
export async function render(main) { clear(main, h("div", { class: "page" }, "todo")); }
