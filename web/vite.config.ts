import { defineConfig } from "vite";

// vidsync-server embeds dist/ and serves it at / (server/src/web.rs).
export default defineConfig({
  clearScreen: false,
  base: "/",
  build: { outDir: "dist", target: "es2021", emptyOutDir: true, assetsInlineLimit: 0 },
});
