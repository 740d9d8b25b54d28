import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The page is built into web/dist, which `ris serve` serves; `npm run dev:web` proxies the API to a
// running `ris serve` so the page reloads on edit.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', assetsInlineLimit: 0 },
  server: { proxy: { '/api': 'http://127.0.0.1:7860' } },
});
