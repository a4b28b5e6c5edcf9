console.log("bundled")
