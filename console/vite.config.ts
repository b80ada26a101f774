import { defineConfig } from 'vite';

// Preact without its Vite preset: esbuild compiles the JSX with Preact's automatic runtime.
// No module-preload polyfill: it would be the only script Kiln's CSP has to reason about.
export default defineConfig({
  root: import.meta.dirname,
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', modulePreload: { polyfill: false }, sourcemap: false, reportCompressedSize: false },
});
