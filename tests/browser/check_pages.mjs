// Drives Debian's chromium headless (playwright-core) against a running max-mnist:
//   node tests/browser/check_pages.mjs BASE_URL SAMPLES_DIR SCREENSHOT_DIR [TABULAR_MODEL]
// 1. /demo: draws a 7 on the canvas with the mouse, waits for the prediction on screen, checks the ten
//    bars and the heatmap, takes a screenshot.
// 2. Swagger UI at /: opens POST /model/predict, "Try it out", picks samples/3.png in the file
//    picker, executes, and waits for "status": "ok" in the response; takes a screenshot.
// 3. Swagger UI: opens POST /predictions/{model}, "Try it out", chooses the raw body
//    (application/octet-stream), picks samples/7.png in its file picker, executes, and waits for 7.
// 4. With TABULAR_MODEL (the Titanic example): /demo?model=TABULAR_MODEL, a third-class man is
//    answered "Not Survived", then a first-class woman "Survived", with the attribution chart;
//    takes a screenshot.
// Exits non-zero with a message on the first failure. Needs NODE_PATH or a node_modules holding
// playwright-core; CHROMIUM (default /usr/bin/chromium).
import { createRequire } from "node:module";
import path from "node:path";

// require() honours NODE_PATH, so playwright-core can live outside the repository.
const { chromium } = createRequire(import.meta.url)("playwright-core");

const [base, samples, shots, tabular] = process.argv.slice(2);
if (!base || !samples || !shots) {
  console.error("usage: node check_pages.mjs BASE_URL SAMPLES_DIR SCREENSHOT_DIR");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  await demoPage();
  await swaggerUpload();
  await swaggerRawUpload();
  if (tabular) await passengerPage(tabular);
  console.log("browser checks passed");
} catch (error) {
  console.error(`browser check failed: ${error.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

async function demoPage() {
  const page = await browser.newPage({ viewport: { width: 1100, height: 520 } });
  await page.goto(`${base}/demo`);
  const box = await page.locator("#pad").boundingBox();
  // A 7: a bar across the top, then a stroke down to the lower left.
  const at = (x, y) => [box.x + (x / 280) * box.width, box.y + (y / 280) * box.height];
  await page.mouse.move(...at(70, 60));
  await page.mouse.down();
  for (const [x, y] of [[140, 58], [210, 60], [185, 120], [160, 180], [135, 240]]) {
    await page.mouse.move(...at(x, y), { steps: 8 });
  }
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector("#prediction").textContent !== "–", null, { timeout: 10000 });
  const shown = await page.locator("#prediction").textContent();
  if (shown.trim() !== "7") throw new Error(`/demo shows ${shown} for a drawn 7`);
  const bars = await page.locator(".bar").count();
  if (bars !== 10) throw new Error(`/demo shows ${bars} bars, not 10`);
  await page.waitForFunction(() => {
    const img = document.querySelector("#heatmap");
    return img.complete && img.naturalWidth === 280;
  }, null, { timeout: 10000 });
  await page.screenshot({ path: path.join(shots, "demo.png") });
  console.log("demo: a drawn 7 is shown as 7, with ten bars and a 280×280 heatmap");
  await page.close();
}

async function swaggerUpload() {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  await page.goto(`${base}/`);
  const operation = page.locator("#operations-MAX-predict");
  await operation.locator(".opblock-summary").click();
  await operation.getByRole("button", { name: "Try it out" }).click();
  await operation.locator('input[type="file"]').first().setInputFiles(path.join(samples, "3.png"));
  await operation.getByRole("button", { name: "Execute" }).click();
  const body = operation.locator(".responses-wrapper .live-responses-table .microlight").first();
  await body.waitFor({ timeout: 10000 });
  const text = await body.textContent();
  if (!/"status":\s*"ok"/.test(text)) throw new Error(`Swagger UI's response: ${text}`);
  if (!/"prediction":\s*3/.test(text)) throw new Error(`Swagger UI's response names another digit: ${text}`);
  await operation.scrollIntoViewIfNeeded();
  await page.screenshot({ path: path.join(shots, "swagger-ui.png"), fullPage: false });
  console.log('swagger ui: samples/3.png uploaded through the file picker, "status": "ok", prediction 3');
  await page.close();
}

async function swaggerRawUpload() {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1400 } });
  await page.goto(`${base}/`);
  const operation = page.locator("#operations-TorchServe-predictions");
  await operation.locator(".opblock-summary").click();
  await operation.getByRole("button", { name: "Try it out" }).click();
  await operation.locator(".opblock-section-request-body select").selectOption("application/octet-stream");
  await operation.locator('input[type="file"]').first().setInputFiles(path.join(samples, "7.png"));
  await operation.getByRole("button", { name: "Execute" }).click();
  const body = operation.locator(".responses-wrapper .live-responses-table .microlight").first();
  await body.waitFor({ timeout: 10000 });
  const text = (await body.textContent()).trim();
  if (text !== "7") throw new Error(`Swagger UI's raw upload to /predictions/{model} was answered ${text}`);
  console.log("swagger ui: samples/7.png sent as the raw body of /predictions/{model} through its file picker, answered 7");
  await page.close();
}

async function passengerPage(model) {
  const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
  await page.goto(`${base}/demo?model=${model}`);
  // The answer to the latest question: its verdict, and no question in flight.
  const verdict = async (expected) => {
    await page.waitForFunction((text) => document.querySelector("#verdict").textContent === text
        && document.querySelector("#status").textContent.startsWith("Probability"),
      expected, { timeout: 10000 });
  };
  await verdict("Not Survived");
  await page.selectOption("#sex", "female");
  await page.selectOption("#pclass", "1");
  await page.fill("#fare", "80");
  await page.fill("#age", "29");
  await verdict("Survived");
  const status = await page.locator("#status").textContent();
  const percent = Number((status.match(/([0-9.]+) %/) || [])[1]);
  if (!(percent > 50)) throw new Error(`a first-class woman: ${status}`);
  await page.waitForFunction(() => {
    const img = document.querySelector("#chart");
    return img.complete && img.naturalWidth >= 400;
  }, null, { timeout: 10000 });
  await page.screenshot({ path: path.join(shots, "titanic.png") });
  console.log(`passengers: a third-class man Not Survived, a first-class woman Survived (${status.trim()}), chart shown`);
  await page.close();
}
