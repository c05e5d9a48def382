// Every word the pages show comes from a message catalog: i18n/en.json and i18n/es.json,
// with the same keys (tests/api/test_pages.py checks). The page speaks the browser's
// language when it has a catalog for it, else English; the visible switch overrides that
// and is remembered in localStorage (a language is not personal data). Numbers and dates
// are formatted for the language with Intl.
//
// A message is a string with {name} placeholders, or, when it depends on a count, an
// object of Intl.PluralRules categories ({"one": ..., "other": ...}) chosen by `count`.

import en from "./i18n/en.json" with { type: "json" };
import es from "./i18n/es.json" with { type: "json" };

export const CATALOGS = { en, es };
export const LANGUAGES = Object.keys(CATALOGS);
const STORED = "tokenwheel.language";

function stored() {
  try {
    return localStorage.getItem(STORED);
  } catch {
    return null; // storage may be off; the browser's language still counts
  }
}

function chooseLanguage() {
  const asked = new URLSearchParams(window.location.search).get("lang");
  const browser = navigator.languages?.length ? navigator.languages : [navigator.language];
  for (const tag of [asked, stored(), ...browser]) {
    const base = String(tag ?? "")
      .toLowerCase()
      .split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

let current = chooseLanguage();
const listeners = [];
const formats = new Map();

export function language() {
  return current;
}

// Intl.NumberFormat for the current language, made once per language and options.
export function numberFormat(options = {}) {
  const key = `${current} ${JSON.stringify(options)}`;
  if (!formats.has(key)) formats.set(key, new Intl.NumberFormat(current, options));
  return formats.get(key);
}

export function dateTimeFormat(options) {
  const key = `${current} date ${JSON.stringify(options)}`;
  if (!formats.has(key)) formats.set(key, new Intl.DateTimeFormat(current, options));
  return formats.get(key);
}

function pluralRules() {
  const key = `${current} plural`;
  if (!formats.has(key)) formats.set(key, new Intl.PluralRules(current));
  return formats.get(key);
}

function fill(value) {
  return typeof value === "number" ? numberFormat().format(value) : String(value);
}

// The message `key` in the current language, placeholders filled in (numbers formatted
// for the language; pass other values already formatted).
export function t(key, params = {}) {
  let message = CATALOGS[current][key] ?? CATALOGS.en[key];
  if (message === undefined) {
    console.error(`no message for ${key}`);
    return key;
  }
  if (typeof message === "object") {
    message = message[pluralRules().select(Number(params.count))] ?? message.other;
  }
  return message.replace(/\{(\w+)\}/g, (whole, name) =>
    name in params ? fill(params[name]) : whole,
  );
}

// Put the catalog's words into the page's static markup: the text of [data-i18n]
// elements and the attributes named by [data-i18n-aria-label], [data-i18n-title] and
// [data-i18n-placeholder].
export function translatePage(root = document) {
  document.documentElement.lang = current;
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const attribute of ["aria-label", "title", "placeholder"]) {
    const data = `data-i18n-${attribute}`;
    for (const node of root.querySelectorAll(`[${data}]`)) {
      node.setAttribute(attribute, t(node.getAttribute(data)));
    }
  }
}

export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang) || lang === current) return;
  current = lang;
  try {
    localStorage.setItem(STORED, lang);
  } catch {
    // not remembered; this page still switches
  }
  translatePage();
  for (const listener of listeners) listener(lang);
}

// `listener(lang)` runs after the language changed (the page redraws its own words).
export function onLanguageChange(listener) {
  listeners.push(listener);
}

// The visible switch: a <select> of the languages, each named in its own language.
export function languageSwitch(select) {
  select.replaceChildren();
  for (const lang of LANGUAGES) {
    const option = new Option(CATALOGS[lang]["language.name"], lang, false, lang === current);
    option.lang = lang;
    select.appendChild(option);
  }
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange((lang) => {
    select.value = lang;
  });
}
