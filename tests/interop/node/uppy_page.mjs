// Uppy (@uppy/core + @uppy/tus) in a browser page, for tests/page: bundled at test time with
// esbuild into a temporary folder. Exposes what the test reads on document.body's dataset.
import Uppy from "@uppy/core";
import Tus from "@uppy/tus";

const params = new URLSearchParams(window.location.search);
const body = document.body;
const uppy = new Uppy({ autoProceed: true });
uppy.use(Tus, {
  endpoint: params.get("endpoint"),
  chunkSize: Number(params.get("chunk")),
  retryDelays: [0, 250, 500, 1000],
});
uppy.on("upload-progress", (file, progress) => {
  body.dataset.uploaded = String(progress.bytesUploaded);
});
uppy.on("upload-success", (file, response) => {
  body.dataset.url = response.uploadURL;
  body.dataset.state = "done";
});
uppy.on("upload-error", (file, error) => {
  body.dataset.error = String(error);
  body.dataset.state = "failed";
});
document.querySelector("#file").addEventListener("change", (event) => {
  for (const file of event.target.files) {
    uppy.addFile({ source: "input", name: file.name, type: file.type, data: file });
  }
});
body.dataset.ready = "true";
