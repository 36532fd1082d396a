import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// The build is committed (dist/) and embedded in the rampart binary; CI rebuilds it
// and fails if it differs, so the output must depend on the sources alone: no
// source maps (absolute paths), content-hashed names, one CSS file.
export default defineConfig({
  plugins: [svelte()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    cssCodeSplit: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
    target: 'es2022',
  },
  server: {
    // `npm run dev` against a local `rampart serve`.
    proxy: { '/api': 'http://127.0.0.1:7070', '/health': 'http://127.0.0.1:7070' },
  },
  test: {
    include: ['tests/**/*.test.ts'],
    environment: 'node',
  },
});
