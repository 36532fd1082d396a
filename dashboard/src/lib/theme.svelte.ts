// Light or dark: the user's choice (kept in localStorage, not a secret), else the
// system's. Applied as data-theme on <html>; the CSS variables do the rest.

export type ThemeChoice = 'system' | 'light' | 'dark';
const KEY = 'rampart.theme';

function systemDark(): boolean {
  return window.matchMedia?.('(prefers-color-scheme: dark)').matches ?? false;
}

class Theme {
  choice = $state<ThemeChoice>((localStorage.getItem(KEY) as ThemeChoice | null) ?? 'system');
  system = $state<'light' | 'dark'>(systemDark() ? 'dark' : 'light');
  effective = $derived(this.choice === 'system' ? this.system : this.choice);

  constructor() {
    window.matchMedia?.('(prefers-color-scheme: dark)').addEventListener('change', (e) => {
      this.system = e.matches ? 'dark' : 'light';
    });
  }

  apply() {
    document.documentElement.dataset.theme = this.effective;
  }

  toggle() {
    this.choice = this.effective === 'dark' ? 'light' : 'dark';
    localStorage.setItem(KEY, this.choice);
    this.apply();
  }
}

export const theme = new Theme();
