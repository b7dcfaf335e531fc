import i18n from 'i18next';
import { initReactI18next } from 'react-i18next';
import en from './en.json' with { type: 'json' };

// Every UI string lives in a message file per language. English ships now; to add one, create
// <lang>.json with the same keys and list it in `loaders` (loaded on demand, English is the fallback).
export const SUPPORTED_LANGUAGES = ['en', 'pt', 'zh', 'de', 'fr'] as const;
export type Language = (typeof SUPPORTED_LANGUAGES)[number];

type Messages = typeof en;
const loaders: Partial<Record<Language, () => Promise<Messages>>> = {
  // pt: () => import('./pt.json', { with: { type: 'json' } }).then((m) => m.default),
};

export function languageOf(locale: string | undefined): Language {
  const base = (locale ?? 'en').toLowerCase().split(/[-_]/)[0];
  return (SUPPORTED_LANGUAGES as readonly string[]).includes(base) ? (base as Language) : 'en';
}

void i18n.use(initReactI18next).init({
  resources: { en: { translation: en } },
  lng: 'en',
  fallbackLng: 'en',
  supportedLngs: [...SUPPORTED_LANGUAGES],
  interpolation: { escapeValue: false }, // React escapes what it renders
  returnNull: false,
});

/** Switches the UI language to the one of the user's locale, loading its messages first. */
export async function applyLocale(locale: string | undefined) {
  const lang = languageOf(locale);
  const load = loaders[lang];
  if (load && !i18n.hasResourceBundle(lang, 'translation')) {
    i18n.addResourceBundle(lang, 'translation', await load());
  }
  const target = lang === 'en' || i18n.hasResourceBundle(lang, 'translation') ? lang : 'en';
  if (i18n.language !== target) await i18n.changeLanguage(target);
  document.documentElement.lang = locale ?? 'en';
}

export default i18n;
