import { defineConfig } from "vite";

// Tauri serves the built page from ../ui/dist (see src-tauri/tauri.conf.json).
export default defineConfig({
  clearScreen: false,
  build: { outDir: "dist", target: "es2021", emptyOutDir: true },
  test: { environment: "node" },
});
