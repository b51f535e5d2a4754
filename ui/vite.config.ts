/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  // The API serves the built files at /ui/ (api/pravah_api/ui.py) and ships them in its package.
  base: "/ui/",
  build: {
    outDir: "../api/pravah_api/ui_dist",
    emptyOutDir: true,
  },
  test: {
    environment: "jsdom",
    setupFiles: ["src/testSetup.ts"],
  },
});
